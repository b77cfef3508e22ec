"""Run by tests/test_ddp.py under torchrun: train with one of the scripts, then save this
rank's weights (generator, and discriminator if any) for the test to compare."""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_srcnn  # noqa: E402
import train_srgan  # noqa: E402

if __name__ == "__main__":
    script, dump, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    module = {"train_srcnn": train_srcnn, "train_srgan": train_srgan}[script]
    result = module.main(module.parse_args(argv))
    weights = {f"g.{k}": v.detach() for k, v in result["model"].state_dict().items()}
    if "discriminator" in result:
        weights.update({f"d.{k}": v.detach() for k, v in result["discriminator"].named_parameters()})
    torch.save(weights, dump / f"rank{os.environ['RANK']}.pt")
