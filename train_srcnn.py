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
from sr.checkpoint import training_state
from sr.cli import ArgumentParser, run
from sr.losses import content_loss
from sr.models import MODELS
from sr.training.config import RunConfig, add_training_args, load_resumable, parse_flags
from sr.training.content import ContentStep, Optim, WeightAverage
from sr.training.loader import TrainingData, make_batches
from sr.training.loop import Progress, ctrl_c_saves, evaluate, metrics_row, score_line, start_line, train_one_epoch
from sr.training.model import build_model, prepare_modules
from sr.training.run_dir import RunDir

SCRIPT = "train_srcnn"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
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
    ema = WeightAverage(model, cfg.ema, resume) if cfg.ema else None
    scored = ema.module if ema else model
    step = ContentStep(net, content_loss(cfg.loss), optim, cfg.precision, ctx.device, ema=ema)

    def state(at: Progress, scores: dict | None = None) -> dict:
        return training_state(arch=cfg.arch, model_kwargs=kwargs, scale=cfg.scale, color=cfg.color, layout=cfg.layout,
                              model=scored, optimizer=optim.optimizer, scheduler=optim.scheduler, scaler=optim.scaler,
                              epoch=at.epoch, step=at.step, partial=at.sums, best_psnr=at.best_psnr, args=cfg.record(),
                              scores=scores, **cfg.precision.record(), **(ema.state(model) if ema else {}))

    # The loop: train, then rank 0 evaluates and saves while the other processes wait.
    progress = Progress.start(resume)
    if ctx.is_main:
        run.begin(cfg.record(), progress.epoch)
        print(start_line(f"{cfg.loss} loss,", cfg, ctx, model, data, batches), flush=True)
    with ctrl_c_saves(progress, run, ctx, state, hint=f"python {SCRIPT}.py"):
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            result = train_one_epoch(step, batches, epoch, progress, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                     watch=[model], last_good=run and run.last)
            if ctx.is_main:
                scores = evaluate(scored, data.eval_images, cfg.scale, MODELS[cfg.arch].input_scale(cfg.scale), ctx.device)
                print(score_line(scores), flush=True)
                run.end_epoch(progress, epoch, scores, metrics_row(epoch, result, scores, step.current_lr()), state)
            else:
                progress.finish_epoch(epoch)
            distributed.barrier(ctx)
    return dict(model=model, best_psnr=progress.best_psnr, out=cfg.out)


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
