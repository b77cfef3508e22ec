"""Train SRResNet (and friends) on RGB patches, then SRGAN on top of it.

    python prepare_h5.py --scale 4 --layout lr-hr --color rgb          # BSDS200 / BSDS100
    python train_srgan.py --phase pretrain --arch srresnet --loss l1
    python train_srgan.py --phase gan --generator runs/srresnet_l1_x4/best.pth

pretrain: the generator alone with a content loss. gan: adds the SRGAN discriminator;
generator loss = content + adv_weight * BCE(D(G(lr)), real) [+ perceptual_weight * VGG],
one step freezing D for the generator, then D on real and on detached fakes.
Runs unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sr import distributed
from sr.cli import ArgumentParser, run
from sr.losses import PerceptualLoss, content_loss
from sr.models import MODELS, Discriminator
from sr.training.config import add_training_args, load_resumable, parse_flags
from sr.training.gan import GAN_FIELDS, GanConfig, add_gan_args, gan_step
from sr.training.loader import TrainingData, make_batches
from sr.training.loop import EpochBatches, ctrl_c_saves, evaluate, metrics_row, score_line, start_line
from sr.training.model import build_model, prepare_modules
from sr.training.optim import Optim, WeightAverage
from sr.training.run_dir import METRIC_FIELDS, RunDir
from sr.training.state import Progress, Trainee

SCRIPT = "train_srgan"
USAGE = """python train_srgan.py --phase pretrain            (SRResNet; after: python prepare_h5.py --scale 4 --layout lr-hr --color rgb)
       python train_srgan.py --phase gan --generator runs/srresnet_l1_x4/best.pth     (SRGAN from it)
       python train_srgan.py [flags below]"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], usage=USAGE)
    add_gan_args(p)
    add_training_args(p, arch=None, loss="l1", scale=None, epochs=3, batch_size=128, lr=1e-3,
                      out="runs/<arch>_<loss>_x<scale>; gan: runs/srgan_<arch>_x<scale>",
                      unset="pretrain: srresnet, x4; gan: the generator's")
    return p


def parse_args(argv: list[str] | None = None):
    return parse_flags(build_parser, argv)


def main(args) -> dict:
    resume = load_resumable(args.resume, SCRIPT) if args.resume else None
    ctx = distributed.setup(args.device)
    try:
        # Configuration: phase, generator, VGG weights and every flag settled and checked; frozen from here on.
        cfg = GanConfig.settle(SCRIPT, args, ctx, resume)
        return train(cfg, ctx, resume)
    finally:
        distributed.teardown(ctx)


def train(cfg: GanConfig, ctx: distributed.Context, resume: dict[str, Any] | None) -> dict:
    gan = cfg.phase == "gan"
    # Data: the patch file (checked against the model) in (seed, epoch) order, and the eval images.
    data = TrainingData.open(cfg.train, cfg.eval, cfg.scale, cfg.layout, cfg.color, cfg.load, cfg.degradation, cfg.seed,
                             cfg.eval_jpeg, cfg.eval_degrade)
    batches = make_batches(data.train, cfg.batch_size, ctx, cfg.seed, cfg.workers)
    run = RunDir(cfg.out, resuming=resume is not None, fields=GAN_FIELDS if gan else METRIC_FIELDS) if ctx.is_main else None

    # Models: G fresh (pretrain), from the pretrained generator (gan), or as the resumed run left it.
    model, kwargs = build_model(cfg.arch, cfg.scale, cfg.color, cfg.seed, resume, cfg.init or (cfg.generator if gan else None))
    total_steps = cfg.epochs * batches.per_epoch
    criterion = content_loss(cfg.loss)
    if not gan:
        (net,) = prepare_modules([model], ctx, cfg.precision.channels_last, cfg.compile)
        optim = Optim.adam(model, cfg.lr, total_steps, cfg.precision, resume, last_layer_lr=cfg.last_layer_lr)
        trainee = Trainee(model, kwargs, optim, WeightAverage(model, cfg.ema, resume) if cfg.ema else None)
        what = f"pretrain, {cfg.loss} loss,"
    else:
        d_kwargs = resume["discriminator_kwargs"] if resume else dict(channels=kwargs["channels"],
                                                                        patch_size=data.train.hr_shape[-1])
        discriminator = Discriminator(**d_kwargs)
        if resume:
            discriminator.load_state_dict(resume["discriminator"])
        if ctx.distributed and ctx.device.type == "cuda":
            # Batch statistics over the global batch, as one process would compute them. (Not
            # on the CPU, where SyncBatchNorm is unsupported: there each rank normalises its
            # own share, and the unused running averages differ between ranks.)
            discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        perceptual = None
        if cfg.perceptual_weight > 0:
            perceptual = PerceptualLoss(cfg.vgg_file, cfg.vgg_layer).to(ctx.device)
        net, d_net = prepare_modules([model, discriminator], ctx, cfg.precision.channels_last, cfg.compile)
        optim = Optim.adam(model, cfg.lr, total_steps, cfg.precision, resume)
        d_optim = Optim.adam(discriminator, cfg.discriminator_lr, total_steps, cfg.precision, resume, prefix="d_")
        trainee = Trainee(model, kwargs, optim, discriminator=discriminator, discriminator_kwargs=d_kwargs, d_optim=d_optim)
        what = f"gan (adv {cfg.adv_weight:g}), {cfg.loss} content,"

    # The loop: train, then rank 0 evaluates and saves while the other processes wait.
    progress = Progress.start(resume)
    if ctx.is_main:
        run.begin(cfg.record(), progress.epoch)
        print(start_line(what, cfg, ctx, model, data, batches), flush=True)
    with ctrl_c_saves(progress, run, ctx, cfg, trainee, hint=f"python {SCRIPT}.py"):
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            epoch_batches = EpochBatches(batches, epoch, progress, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                         channels_last=cfg.precision.channels_last, watch=trainee.watched,
                                         last_good=run and run.last)
            for lr, hr in epoch_batches:  # (N, 3, h, w) and (N, 3, H, W) in [0, 1], on the device
                if gan:
                    epoch_batches.record(**gan_step(net, discriminator, d_net, lr, hr, criterion, optim, d_optim,
                                                    cfg.precision, cfg.adv_weight, perceptual, cfg.perceptual_weight))
                    continue
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
    return dict(model=model, best_psnr=progress.best_psnr, out=cfg.out) | ({"discriminator": discriminator} if gan else {})


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
