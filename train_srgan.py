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

from pathlib import Path

import torch
from torch import nn

from sr import distributed
from sr.checkpoint import bare_module, load_checkpoint
from sr.cli import ArgumentParser, positive_float, run, scale_type
from sr.errors import UserError
from sr.losses import CONTENT_LOSSES, VGG19_LAYERS, PerceptualLoss, adversarial_loss, content_loss
from sr.models import COLORS, MODELS, Discriminator, rebuild
from sr.training import METRIC_FIELDS, AmpSettings, Session, add_training_args, load_resumable, prepare_modules, to_device
from sr.training import train_content

SCRIPT = "train_srgan"
GAN_FIELDS = ["epoch", "loss", "content", "adv", "perceptual", "d", "psnr", "ssim", "lr", "seconds", "samples_per_s"]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phase", choices=("pretrain", "gan"), default="pretrain", help="default pretrain")
    p.add_argument("--arch", choices=list(MODELS), help="generator (pretrain: default srresnet; gan: taken from --generator)")
    p.add_argument("--loss", choices=list(CONTENT_LOSSES), default="l1", help="content loss (default l1, better than mse in the report)")
    p.add_argument("--scale", type=scale_type, help="upscaling factor (pretrain: default 4; gan: taken from --generator)")
    p.add_argument("--color", choices=list(COLORS), help="default: the model's (rgb for SRResNet)")
    p.add_argument("--generator", type=Path, help="gan: the pretrained generator checkpoint to start from")
    p.add_argument("--adv-weight", type=positive_float, default=1e-3, help="weight of the adversarial loss (default 1e-3)")
    p.add_argument("--d-lr", type=positive_float, help="discriminator learning rate (default: --lr)")
    p.add_argument("--perceptual-weight", type=float, default=0.0, help="weight of the VGG19 feature loss (default 0: off)")
    p.add_argument("--vgg-weights", type=Path, help="torchvision vgg19 state_dict file for the perceptual loss (never downloaded)")
    p.add_argument("--vgg-layer", choices=list(VGG19_LAYERS), default="relu5_4", help="VGG19 feature layer (default relu5_4)")
    add_training_args(p, epochs=3, batch_size=128, lr=1e-3,
                      out="runs/<arch>_<loss>_x<scale>; gan: runs/srgan_<arch>_x<scale>")
    return p


def parse_args(argv: list[str] | None = None):
    return build_parser().parse_args(argv)


def main(args) -> dict:
    # A resumed run continues in the phase it was saved in, whatever --phase says.
    resume = load_resumable(args.resume, SCRIPT) if args.resume else None
    phase = resume["args"]["phase"] if resume else args.phase
    ctx = distributed.setup(args.device)
    try:
        return pretrain(args, ctx, resume) if phase == "pretrain" else train_gan(args, ctx, resume)
    finally:
        distributed.teardown(ctx)


def pretrain(args, ctx: distributed.Context, resume: dict | None = None) -> dict:
    def defaults(resume: dict | None) -> None:
        args.arch = args.arch or "srresnet"
        args.scale = args.scale or 4

    session = Session.start(args, ctx, SCRIPT, build_parser(), lambda a: Path("runs") / f"{a.arch}_{a.loss}_x{a.scale}",
                            before_data=defaults, resume=resume)
    return train_content(session, f"pretrain, {args.loss} loss,", METRIC_FIELDS)


class GeneratorSource:
    """gan phase: reads --generator; its architecture, scale and colour become the run's.

    Called by Session.start before the data is opened (the data must fit the generator);
    a GAN run being resumed carries its generator already, so then it does nothing.
    """

    def __init__(self, args):
        self.args, self.state = args, None

    def __call__(self, resume: dict | None) -> None:
        args = self.args
        if resume:
            return
        if args.generator is None:
            raise UserError("--phase gan needs --generator CHECKPOINT (a pretrained generator, e.g. runs/srresnet_l1_x4/best.pth)")
        state = load_checkpoint(args.generator)
        for key, flag in (("arch", "--arch"), ("scale", "--scale"), ("color", "--color")):
            given = getattr(args, key)
            if given is not None and given != state[key]:
                raise UserError(f"{flag} {given} does not match the generator {args.generator}, which is "
                                f"{state['arch']} x{state['scale']} {state['color']}")
            setattr(args, key, state[key])
        if state["layout"] != "lr-hr":
            raise UserError(f"{args.generator}: {state['arch']} reads upsampled images; SRGAN needs a generator on LR input")
        self.state = state


class GanStep:
    """One SRGAN iteration (the order of BasicSR's SRGANModel):

    1. generator: D frozen; loss = content + adv_weight * BCE(D(G(lr)), real) [+ perceptual];
    2. discriminator: BCE(D(hr), real) and BCE(D(G(lr).detach()), fake), one backward each.

    In step 1 the bare D is called, not its DDP wrapper: D gets no gradients there, and a
    DDP module must see a backward for every forward.
    """

    def __init__(self, g_net, d_bare, d_net, criterion, perceptual, args, amp: AmpSettings, device, g_opt, d_opt):
        self.g_net, self.d_bare, self.d_net = g_net, d_bare, d_net
        self.criterion, self.perceptual = criterion, perceptual
        self.adv_weight, self.perceptual_weight = args.adv_weight, args.perceptual_weight
        self.amp, self.device = amp, device
        self.g_opt, self.g_sched, self.g_scaler = g_opt
        self.d_opt, self.d_sched, self.d_scaler = d_opt

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        lr, hr = to_device(lr, self.device, self.amp.channels_last), to_device(hr, self.device, self.amp.channels_last)
        self.d_bare.requires_grad_(False)
        with self.amp.autocast():
            sr = self.g_net(lr)
            adv = adversarial_loss(self.d_bare(sr), real=True)
            perceptual = self.perceptual(sr, hr) if self.perceptual is not None else torch.zeros((), device=self.device)
        content = self.criterion(sr.float(), hr)
        g_loss = content + self.adv_weight * adv + self.perceptual_weight * perceptual
        self.g_opt.zero_grad(set_to_none=True)
        self.g_scaler.scale(g_loss).backward()
        self.g_scaler.step(self.g_opt)
        self.g_scaler.update()

        self.d_bare.requires_grad_(True)
        self.d_opt.zero_grad(set_to_none=True)
        fake = sr.detach()
        d_loss = torch.zeros((), device=self.device)
        for images, real in ((hr, True), (fake, False)):
            with self.amp.autocast():
                loss = adversarial_loss(self.d_net(images), real=real)
            self.d_scaler.scale(loss).backward()
            d_loss = d_loss + loss.detach()
        self.d_scaler.step(self.d_opt)
        self.d_scaler.update()
        self.g_sched.step()
        self.d_sched.step()
        return {"loss": g_loss.detach(), "content": content.detach(), "adv": adv.detach(),
                "perceptual": perceptual.detach().float(), "d": d_loss}

    def current_lr(self) -> float:
        return self.g_sched.get_last_lr()[0]


def train_gan(args, ctx: distributed.Context, resume: dict | None = None) -> dict:
    source = GeneratorSource(args)
    session = Session.start(args, ctx, SCRIPT, build_parser(), lambda a: Path("runs") / f"srgan_{a.arch}_x{a.scale}",
                            before_data=source, resume=resume)
    resume = session.resume
    if resume:
        model, kwargs = session.create_generator()
        d_kwargs = resume["discriminator_kwargs"]
    else:
        torch.manual_seed(args.seed)
        kwargs = source.state["model_kwargs"]
        model = rebuild(args.arch, kwargs)
        model.load_state_dict(source.state["model"])
        d_kwargs = dict(channels=kwargs["channels"], patch_size=session.data.train.hr_shape[-1])
    discriminator = Discriminator(**d_kwargs)
    if resume:
        discriminator.load_state_dict(resume["discriminator"])
    if ctx.distributed and ctx.device.type == "cuda":
        # Batch statistics over the global batch, as one process would compute them. (Not
        # on the CPU, where SyncBatchNorm is unsupported: there each rank normalises its
        # own share, and the unused running averages differ between ranks.)
        discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
    perceptual = None
    if args.perceptual_weight > 0:
        if args.vgg_weights is None:
            raise UserError("--perceptual-weight needs --vgg-weights PATH (torchvision's vgg19 state_dict; never downloaded)")
        perceptual = PerceptualLoss(args.vgg_weights, args.vgg_layer).to(ctx.device)
    g_net, d_net = prepare_modules([model, discriminator], ctx, session.amp.channels_last, args.compile)
    g_opt = session.optimizer(model, args.lr)
    d_opt = session.optimizer(discriminator, args.d_lr or args.lr, key="d_")
    step = GanStep(g_net, discriminator, d_net, content_loss(args.loss), perceptual, args, session.amp, ctx.device, g_opt, d_opt)

    def state() -> dict:
        return dict(session.model_state(model, kwargs), optimizer=g_opt[0].state_dict(), scheduler=g_opt[1].state_dict(),
                    scaler=g_opt[2].state_dict(), discriminator=bare_module(discriminator).state_dict(),
                    discriminator_kwargs=d_kwargs, d_optimizer=d_opt[0].state_dict(), d_scheduler=d_opt[1].state_dict(),
                    d_scaler=d_opt[2].state_dict(), generator_source=str(args.generator))

    return session.fit(model, step, state, f"gan (adv {args.adv_weight:g}), {args.loss} content,", GAN_FIELDS) | {"discriminator": discriminator}


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
