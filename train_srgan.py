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

import torch
from torch import nn

from sr import distributed
from sr.checkpoint import bare_module, training_state
from sr.cli import ArgumentParser, run
from sr.errors import UserError
from sr.losses import PerceptualLoss, content_loss
from sr.models import MODELS, Discriminator, rebuild
from sr.training.config import add_training_args, load_resumable, parse_flags
from sr.training.content import ContentStep, Optim, WeightAverage
from sr.training.gan import GAN_FIELDS, GanConfig, GanStep, add_gan_args, read_generator
from sr.training.loader import TrainingData, make_batches
from sr.training.loop import Progress, ctrl_c_saves, evaluate, metrics_row, score_line, start_line, train_one_epoch
from sr.training.model import build_model, prepare_modules
from sr.training.run_dir import METRIC_FIELDS, RunDir

SCRIPT = "train_srgan"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    add_gan_args(p)
    add_training_args(p, arch=None, loss="l1", scale=None, epochs=3, batch_size=128, lr=1e-3,
                      out="runs/<arch>_<loss>_x<scale>; gan: runs/srgan_<arch>_x<scale>",
                      unset="pretrain: srresnet, x4; gan: the generator's")
    return p


def parse_args(argv: list[str] | None = None):
    return parse_flags(build_parser, argv)


def main(args) -> dict:
    # A resumed run continues in the phase it was saved in; a new GAN run takes its generator's
    # architecture, scale and colour.
    resume = load_resumable(args.resume, SCRIPT) if args.resume else None
    phase = resume["args"]["phase"] if resume else args.phase
    generator = read_generator(args) if phase == "gan" and not resume else None
    ctx = distributed.setup(args.device)
    try:
        # Configuration: the flags, the resumed run's settings, the defaults; frozen from here on.
        if phase == "pretrain":
            cfg = GanConfig.from_args(SCRIPT, args, ctx, resume, fill=dict(arch="srresnet", scale=4))
        else:
            fill = {k: generator[k] for k in ("arch", "scale", "color")} if generator else None
            cfg = GanConfig.from_args(SCRIPT, args, ctx, resume, out="runs/srgan_{arch}_x{scale}", fill=fill)
        return train(cfg, ctx, resume, generator)
    finally:
        distributed.teardown(ctx)


def train(cfg: GanConfig, ctx: distributed.Context, resume: dict[str, Any] | None, generator: dict[str, Any] | None) -> dict:
    gan = cfg.phase == "gan"
    if gan and (cfg.ema or cfg.last_layer_lr != 1.0):
        raise UserError("--ema and --last-layer-lr are for the pretrain phase (a content loss); the GAN phase trains without them")
    # Data: the patch file (checked against the model) in (seed, epoch) order, and the eval images.
    data = TrainingData.open(cfg.train, cfg.eval, cfg.scale, cfg.layout, cfg.color, cfg.load, cfg.degradation, cfg.seed,
                             cfg.eval_jpeg, cfg.eval_degrade)
    batches = make_batches(data.train, cfg.batch_size, ctx, cfg.seed, cfg.workers)
    run = RunDir(cfg.out, resuming=resume is not None, fields=GAN_FIELDS if gan else METRIC_FIELDS) if ctx.is_main else None

    # Models: G fresh (pretrain), the pretrained generator (gan), or as the resumed run left it.
    if generator:
        torch.manual_seed(cfg.seed)
        kwargs = generator["model_kwargs"]
        model = rebuild(cfg.arch, kwargs)
        model.load_state_dict(generator["model"])
    else:
        model, kwargs = build_model(cfg.arch, cfg.scale, cfg.color, cfg.seed, resume, cfg.init)
    total_steps = cfg.epochs * batches.per_epoch
    ema = None
    if not gan:
        (net,) = prepare_modules([model], ctx, cfg.precision.channels_last, cfg.compile)
        optim = Optim.adam(model, cfg.lr, total_steps, cfg.precision, resume, last_layer_lr=cfg.last_layer_lr)
        ema = WeightAverage(model, cfg.ema, resume) if cfg.ema else None
        step = ContentStep(net, content_loss(cfg.loss), optim, cfg.precision, ctx.device, ema=ema)
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
            if cfg.vgg_weights is None:
                raise UserError("--perceptual-weight needs --vgg-weights PATH (torchvision's vgg19 state_dict; never downloaded)")
            perceptual = PerceptualLoss(cfg.vgg_weights, cfg.vgg_layer).to(ctx.device)
        g_net, d_net = prepare_modules([model, discriminator], ctx, cfg.precision.channels_last, cfg.compile)
        optim = Optim.adam(model, cfg.lr, total_steps, cfg.precision, resume)
        d_optim = Optim.adam(discriminator, cfg.discriminator_lr, total_steps, cfg.precision, resume, prefix="d_")
        step = GanStep(g_net=g_net, d_bare=discriminator, d_net=d_net, criterion=content_loss(cfg.loss), g_optim=optim,
                       d_optim=d_optim, precision=cfg.precision, device=ctx.device, adv_weight=cfg.adv_weight,
                       perceptual=perceptual, perceptual_weight=cfg.perceptual_weight)
        what = f"gan (adv {cfg.adv_weight:g}), {cfg.loss} content,"
    scored = ema.module if ema else model  # --ema: the average is scored, kept as best.pth and exported

    def state(at: Progress, scores: dict | None = None) -> dict:
        extra = ema.state(model) if ema else {}
        if gan:
            extra = dict(discriminator=bare_module(discriminator).state_dict(), discriminator_kwargs=d_kwargs,
                         **d_optim.state("d_"), generator_source=str(cfg.generator))
        return training_state(arch=cfg.arch, model_kwargs=kwargs, scale=cfg.scale, color=cfg.color, layout=cfg.layout,
                              model=scored, optimizer=optim.optimizer, scheduler=optim.scheduler, scaler=optim.scaler,
                              epoch=at.epoch, step=at.step, partial=at.sums, best_psnr=at.best_psnr, args=cfg.record(),
                              scores=scores, **cfg.precision.record(), **extra)

    # The loop: train, then rank 0 evaluates and saves while the other processes wait.
    progress = Progress.start(resume)
    if ctx.is_main:
        run.begin(cfg.record(), progress.epoch)
        print(start_line(what, cfg, ctx, model, data, batches), flush=True)
    with ctrl_c_saves(progress, run, ctx, state, hint=f"python {SCRIPT}.py"):
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            result = train_one_epoch(step, batches, epoch, progress, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                     watch=[model, discriminator] if gan else [model], last_good=run and run.last)
            if ctx.is_main:
                scores = evaluate(scored, data.eval_images, cfg.scale, MODELS[cfg.arch].input_scale(cfg.scale), ctx.device)
                print(score_line(scores), flush=True)
                run.end_epoch(progress, epoch, scores, metrics_row(epoch, result, scores, step.current_lr()), state)
            else:
                progress.finish_epoch(epoch)
            distributed.barrier(ctx)
    return dict(model=model, best_psnr=progress.best_psnr, out=cfg.out) | ({"discriminator": discriminator} if gan else {})


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
