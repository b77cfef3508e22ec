"""Train an SRCNN-family model on patches from prepare_h5.py.

    python prepare_h5.py --scale 3
    python train_srcnn.py --arch fsrcnn --loss l1 --epochs 10

Adam with cosine annealing to zero; after every epoch the model is scored on the eval
images (PSNR/SSIM on Y, the standard protocol) and last.pth / best.pth are saved.
Runs unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel).
"""

from __future__ import annotations

from typing import Any

from sr import distributed
from sr.cli import ArgumentParser, run
from sr.losses import content_loss
from sr.models import MODELS
from sr.training.config import RunConfig, add_training_args, load_resumable, parse_flags
from sr.training.loader import TrainingData, make_batches
from sr.training.loop import EpochBatches, ctrl_c_saves, evaluate, metrics_row, score_line, start_line
from sr.training.optim import Optim, WeightAverage
from sr.training.state import Progress, Trainee
from sr.training.model import build_model, prepare_modules
from sr.training.run_dir import RunDir

SCRIPT = "train_srcnn"
USAGE = """python train_srcnn.py --arch fsrcnn --loss l1 --epochs 10     (after: python prepare_h5.py --scale 3)
       python train_srcnn.py --resume runs/fsrcnn_l1_x3/last.pth        (go on after Ctrl-C)
       python train_srcnn.py [flags below]"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], usage=USAGE)
    add_training_args(p, arch="srcnn", loss="mse", scale=3, epochs=10, batch_size=32, lr=1e-3, out="runs/<arch>_<loss>_x<scale>")
    return p


def parse_args(argv: list[str] | None = None):
    return parse_flags(build_parser, argv)


def main(args) -> dict:
    resume = load_resumable(args.resume, SCRIPT) if args.resume else None
    ctx = distributed.setup(args.device)
    try:
        # Configuration: the flags, the resumed run's settings, the defaults; frozen from here on.
        cfg = RunConfig.from_args(SCRIPT, args, ctx, resume)
        return train(cfg, ctx, resume)
    finally:
        distributed.teardown(ctx)


def train(cfg: RunConfig, ctx: distributed.Context, resume: dict[str, Any] | None) -> dict:
    # Data: the patch file (checked against the model) in (seed, epoch) order, and the eval images.
    data = TrainingData.open(cfg.train, cfg.eval, cfg.scale, cfg.layout, cfg.color, cfg.load, cfg.degradation, cfg.seed,
                             cfg.eval_jpeg, cfg.eval_degrade)
    batches = make_batches(data.train, cfg.batch_size, ctx, cfg.seed, cfg.workers)
    run = RunDir(cfg.out, resuming=resume is not None) if ctx.is_main else None

    # Model, optimizer and schedule: fresh (seeded, or --init's weights), or as the resumed run left them.
    model, kwargs = build_model(cfg.arch, cfg.scale, cfg.color, cfg.seed, resume, cfg.init)
    (net,) = prepare_modules([model], ctx, cfg.precision.channels_last, cfg.compile)
    optim = Optim.adam(model, cfg.lr, cfg.epochs * batches.per_epoch, cfg.precision, resume, last_layer_lr=cfg.last_layer_lr)
    # --ema: the averaged weights are the run's model (scored, best.pth, exported); the trained ones resume.
    trainee = Trainee(model, kwargs, optim, WeightAverage(model, cfg.ema, resume) if cfg.ema else None)
    criterion = content_loss(cfg.loss)

    # The loop: train, then rank 0 evaluates and saves while the other processes wait.
    progress = Progress.start(resume)
    if ctx.is_main:
        run.begin(cfg.record(), progress.epoch)
        print(start_line(f"{cfg.loss} loss,", cfg, ctx, model, data, batches), flush=True)
    with ctrl_c_saves(progress, run, ctx, cfg, trainee, hint=f"python {SCRIPT}.py"):
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            epoch_batches = EpochBatches(batches, epoch, progress, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                         channels_last=cfg.precision.channels_last, watch=[model], last_good=run and run.last)
            for lr, hr in epoch_batches:  # (N, C, h, w) and (N, C, H, W) in [0, 1], on the device
                with cfg.precision.autocast():
                    pred = net(lr)
                loss = criterion(pred.float(), hr)  # the loss in fp32 whatever the forward ran in
                optim.optimizer.zero_grad(set_to_none=True)
                optim.scaler.scale(loss).backward()
                optim.scaler.step(optim.optimizer)  # skipped by the scaler when fp16 gradients overflowed
                optim.scaler.update()
                optim.scheduler.step()
                if trainee.ema is not None:
                    trainee.ema.update(net)
                epoch_batches.record(loss=loss)
            if ctx.is_main:
                scores = evaluate(trainee.scored, data.eval_images, cfg.scale, MODELS[cfg.arch].input_scale(cfg.scale),
                                  ctx.device)
                print(score_line(scores), flush=True)
                row = metrics_row(epoch, epoch_batches.result, scores, optim.current_lr())
                run.end_epoch(progress, epoch, scores, row, cfg, trainee)
            else:
                progress.finish_epoch(epoch)
            distributed.barrier(ctx)
    return dict(model=model, best_psnr=progress.best_psnr, out=cfg.out)


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
