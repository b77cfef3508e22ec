"""Weights-only copies of training checkpoints (no optimizer state), so that what comes back from a
lent GPU fits its limits: ``runs/<run>/best.pth`` -> ``runs/<run>/best.weights.pth``.

    python -m experiments.weights_only runs/gpu20 [--names best.pth last.pth]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sr.checkpoint import load_checkpoint, save_checkpoint
from sr.checkpoint_fields import REQUIRED

# What a loadable checkpoint must hold, and what says where it came from; no optimizer state.
KEEP = (*REQUIRED, "epoch", "best_psnr", "scores", "args")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, help="a folder of run folders")
    p.add_argument("--names", nargs="+", default=["best.pth"], help="which checkpoints of each run")
    args = p.parse_args(argv)
    for run in sorted(args.runs.glob("*")):
        if run.name.endswith(".probe") or not (run / "best.pth").exists():
            continue
        for name in args.names:
            if (run / name).exists():
                state = load_checkpoint(run / name)
                save_checkpoint(run / f"{name[:-4]}.weights.pth", {k: state[k] for k in KEEP if k in state})
                print(run.name, name, "epoch", state["epoch"], "validation best", round(state["best_psnr"], 4))


if __name__ == "__main__":
    main()
