"""Train an SRCNN-family model on patches from prepare_h5.py.

    python prepare_h5.py --scale 3
    python train_srcnn.py --arch fsrcnn --loss l1 --epochs 10

Adam with cosine annealing to zero; after every epoch the model is scored on the eval
images (PSNR/SSIM on Y, the standard protocol) and last.pth / best.pth are saved.
Runs unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sr import distributed
from sr.cli import ArgumentParser, run, scale_type
from sr.errors import UserError
from sr.losses import CONTENT_LOSSES, content_loss
from sr.models import COLORS, MODELS, create_model
from sr.training import EpochLoop, add_training_args, cosine_schedule, make_loader, merge_resumed_args, prepare_modules
from sr.training import RunDir, TrainingData, amp_settings, evaluate, json_safe, load_resumable, to_device

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
    resume = None
    if args.resume:
        resume = load_resumable(args.resume, SCRIPT)
        merge_resumed_args(args, resume["args"], vars(build_parser().parse_args([])))
        args.out = args.out or args.resume.parent
    spec = MODELS[args.arch]
    args.color = args.color or spec.color
    data = TrainingData.open(args, spec.layout)
    args.out = args.out or Path("runs") / f"{args.arch}_{args.loss}_x{args.scale}"
    run_dir = RunDir(args.out, resuming=resume is not None) if ctx.is_main else None

    torch.manual_seed(args.seed)
    try:
        model, kwargs = create_model(args.arch, args.scale, args.color)
    except ValueError as exc:
        raise UserError(f"--arch {args.arch}: {exc}") from None
    if resume:
        model.load_state_dict(resume["model"])
    amp = amp_settings(args, ctx.device)
    (net,) = prepare_modules([model], ctx, amp.channels_last, args.compile)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader, batches = make_loader(data.train, args.batch_size, ctx, args.seed, args.workers)
    scheduler = cosine_schedule(optimizer, args.epochs * len(batches.batches))
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp.scaler)
    if resume:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume.get("scaler", {}))
    criterion = content_loss(args.loss)

    def step(lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        lr, hr = to_device(lr, ctx.device, amp.channels_last), to_device(hr, ctx.device, amp.channels_last)
        with amp.autocast():
            pred = net(lr)
        loss = criterion(pred.float(), hr)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        return {"loss": loss.detach()}

    def state(epoch: int, step_in_epoch: int, partial: dict) -> dict:
        return dict(arch=args.arch, model_kwargs=kwargs, scale=args.scale, color=args.color, layout=spec.layout,
                    model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                    scaler=scaler.state_dict(), epoch=epoch, step=step_in_epoch, partial=partial,
                    args=dict(json_safe(args), script=SCRIPT))

    if ctx.is_main:
        run_dir.write_args(args)
        run_dir.keep_metrics_until(resume["epoch"] if resume else 0, EpochLoop.default_fields())
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.arch} ({params:,} params) x{args.scale} {args.color}, {args.loss} loss: {data.describe(len(batches.batches), args.batch_size)}; "
              f"{ctx.device.type}{f' x{ctx.world_size}' if ctx.distributed else ''}, {amp.describe()}; run folder {args.out}", flush=True)
    loop = EpochLoop(
        ctx=ctx, run=run_dir, loader=loader, batches=batches, epochs=args.epochs, samples_per_step=args.batch_size,
        step=step, state=state, current_lr=lambda: scheduler.get_last_lr()[0],
        evaluate=lambda: evaluate(model, data.eval_images, args.scale, spec.layout, ctx.device),
        best_psnr=resume.get("best_psnr", float("-inf")) if resume else float("-inf"),
        resume_hint=f"python {SCRIPT}.py",
    )
    start_epoch, start_step = (resume["epoch"] + 1, resume["step"]) if resume else (1, 0)
    loop.fit(start_epoch, start_step, resume.get("partial") if resume else None)
    return dict(model=model, best_psnr=loop.best_psnr, out=Path(args.out))


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
