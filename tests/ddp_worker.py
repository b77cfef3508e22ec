"""Run by tests/test_ddp.py under torchrun: train, then save this rank's weights."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_srcnn  # noqa: E402

if __name__ == "__main__":
    dump, argv = Path(sys.argv[1]), sys.argv[2:]
    result = train_srcnn.main(train_srcnn.parse_args(argv))
    rank = int(__import__("os").environ["RANK"])
    torch.save(result["model"].state_dict(), dump / f"rank{rank}.pt")
