"""Train an SRCNN-family model on patches from prepare_h5.py.

    python prepare_h5.py --scale 3
    python train_srcnn.py --arch fsrcnn --loss l1 --epochs 10

Adam with cosine annealing to zero; after every epoch the model is scored on the eval
images (PSNR/SSIM on Y, the standard protocol) and last.pth / best.pth are saved.
Runs unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel).
"""

from __future__ import annotations

from pathlib import Path

from sr import distributed
from sr.cli import ArgumentParser, run, scale_type
from sr.losses import CONTENT_LOSSES
from sr.models import COLORS, MODELS
from sr.training import Session, add_training_args, train_content

SCRIPT = "train_srcnn"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=list(MODELS), default="srcnn", help="model (default srcnn)")
    p.add_argument("--loss", choices=list(CONTENT_LOSSES), default="mse", help="training loss (default mse)")
    p.add_argument("--scale", type=scale_type, default=3, help="upscaling factor, an integer >= 2 (default 3)")
    p.add_argument("--color", choices=list(COLORS), help="y or rgb (default: the model's, y for the SRCNN family)")
    add_training_args(p, epochs=10, batch_size=32, lr=1e-3)
    return p


def parse_args(argv: list[str] | None = None):
    return build_parser().parse_args(argv)


def main(args) -> dict:
    ctx = distributed.setup(args.device)
    try:
        return train(args, ctx)
    finally:
        distributed.teardown(ctx)


def train(args, ctx: distributed.Context) -> dict:
    session = Session.start(args, ctx, SCRIPT, build_parser(), lambda a: Path("runs") / f"{a.arch}_{a.loss}_x{a.scale}")
    return train_content(session, f"{args.loss} loss,")


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
