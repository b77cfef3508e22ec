"""The SRGAN phase of train_srgan.py: its settings, the pretrained generator it starts from,
and one adversarial training step.

generator loss = content + adv_weight * BCE(D(G(lr)), real) [+ perceptual_weight * VGG];
one step freezing D for the generator, then D on real and on detached fakes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from sr.checkpoint import load_checkpoint
from sr.cli import positive_float
from sr.errors import UserError
from sr.losses import VGG19_LAYERS, adversarial_loss
from sr.precision import Precision
from sr.training.config import RunConfig
from sr.training.optim import Optim

IMAGENET = "imagenet"  # --vgg-weights imagenet: torchvision's own VGG19 weights
GAN_FIELDS = ["epoch", "loss", "content", "adv", "perceptual", "d", "psnr", "ssim", "lr", "seconds", "samples_per_s"]


def add_gan_args(p: argparse.ArgumentParser) -> None:
    """train_srgan.py's own flags (GanConfig's settings), in a group of their own."""
    p = p.add_argument_group("GAN")
    p.add_argument("--phase", choices=("pretrain", "gan"), default="pretrain", help="default pretrain")
    p.add_argument("--generator", type=Path, help="gan: the pretrained generator checkpoint to start from")
    p.add_argument("--adv-weight", type=positive_float, default=1e-3, help="weight of the adversarial loss (default 1e-3)")
    p.add_argument("--d-lr", type=positive_float, help="discriminator learning rate (default: --lr)")
    p.add_argument("--perceptual-weight", type=float, default=0.0, help="weight of the VGG19 feature loss (default 0: off)")
    p.add_argument("--vgg-weights", type=Path, help="torchvision vgg19 state_dict file for the perceptual loss, or "
                   f"'{IMAGENET}': torchvision's ImageNet VGG19 weights from torch's hub cache (downloaded there once)")
    p.add_argument("--vgg-layer", choices=list(VGG19_LAYERS), default="relu5_4", help="VGG19 feature layer (default relu5_4)")


@dataclass(frozen=True, kw_only=True)
class GanConfig(RunConfig):
    """A run of train_srgan.py: RunConfig's settings and the GAN's."""

    SETTINGS: ClassVar[tuple[str, ...]] = ("phase", *RunConfig.SETTINGS, "generator", "adv_weight", "d_lr",
                                           "perceptual_weight", "vgg_weights", "vgg_layer")
    PATHS: ClassVar[tuple[str, ...]] = (*RunConfig.PATHS, "generator", "vgg_weights")

    phase: str
    generator: Path | None
    adv_weight: float
    d_lr: float | None
    perceptual_weight: float
    vgg_weights: Path | None
    vgg_layer: str

    @property
    def discriminator_lr(self) -> float:
        return self.d_lr or self.lr

    @property
    def vgg_file(self) -> Path | None:
        """The VGG19 weights file for PerceptualLoss; None: torchvision's ImageNet weights (--vgg-weights imagenet)."""
        return None if str(self.vgg_weights) == IMAGENET else self.vgg_weights

    @classmethod
    def settle(cls, script: str, args: argparse.Namespace, ctx: Any, resume: dict[str, Any] | None) -> GanConfig:
        """``RunConfig.from_args`` for either phase, with everything a flag can get wrong refused here,
        before any data is opened or run folder made: a resumed run keeps its phase; a new GAN run
        takes its generator's architecture, scale and colour (and must have one); the VGG weights
        must be there when the perceptual loss is on; --ema and --last-layer-lr are the pretrain phase's."""
        phase = resume["args"]["phase"] if resume else args.phase
        if phase == "gan":
            generator = read_generator(args) if not resume else None
            fill = {k: generator[k] for k in ("arch", "scale", "color")} if generator else None
            cfg = cls.from_args(script, args, ctx, resume, out="runs/srgan_{arch}_x{scale}", fill=fill)
        else:
            cfg = cls.from_args(script, args, ctx, resume, fill=dict(arch="srresnet", scale=4))
        if cfg.phase == "gan" and (cfg.ema or cfg.last_layer_lr != 1.0):
            raise UserError("--ema and --last-layer-lr are for the pretrain phase (a content loss); the GAN phase trains without them")
        if cfg.perceptual_weight > 0:
            if cfg.vgg_weights is None:
                raise UserError("--perceptual-weight needs --vgg-weights: a file holding torchvision's vgg19 state_dict, "
                                f"or '{IMAGENET}' for torchvision's ImageNet weights (from torch's hub cache, downloaded once)")
            if cfg.vgg_file is not None and not Path(cfg.vgg_file).is_file():
                raise UserError(f"--vgg-weights {cfg.vgg_weights}: no such file")
        return cfg


def read_generator(args: argparse.Namespace) -> dict[str, Any]:
    """gan phase: the pretrained generator checkpoint; its architecture, scale and colour become the run's."""
    if args.generator is None:
        raise UserError("--phase gan needs --generator CHECKPOINT (a pretrained generator, e.g. runs/srresnet_l1_x4/best.pth)")
    state = load_checkpoint(args.generator)
    for key in ("arch", "scale", "color"):
        given = getattr(args, key)
        if given is not None and given != state[key]:
            raise UserError(f"--{key} {given} does not match the generator {args.generator}, which is "
                            f"{state['arch']} x{state['scale']} {state['color']}")
    if state["layout"] != "lr-hr":
        raise UserError(f"{args.generator}: {state['arch']} reads upsampled images; SRGAN needs a generator on LR input")
    return state


def gan_step(g_net: nn.Module, d_bare: nn.Module, d_net: nn.Module, lr: torch.Tensor, hr: torch.Tensor,
             criterion: nn.Module, g_optim: Optim, d_optim: Optim, precision: Precision, adv_weight: float,
             perceptual: nn.Module | None = None, perceptual_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """One SRGAN iteration on a device batch (the order of BasicSR's SRGANModel); returns the detached losses.

    1. generator: D frozen; loss = content + adv_weight * BCE(D(G(lr)), real) [+ perceptual];
    2. discriminator: BCE(D(hr), real) and BCE(D(G(lr).detach()), fake), one backward each.

    In step 1 the bare D is called, not its DDP wrapper: D gets no gradients there, and a
    DDP module must see a backward for every forward.
    """
    d_bare.requires_grad_(False)
    with precision.autocast():
        sr = g_net(lr)
        adv = adversarial_loss(d_bare(sr), real=True)
        vgg = perceptual(sr, hr) if perceptual is not None else torch.zeros((), device=lr.device)
    content = criterion(sr.float(), hr)
    g_loss = content + adv_weight * adv + perceptual_weight * vgg
    g_optim.optimizer.zero_grad(set_to_none=True)
    g_optim.backward(g_loss)
    g_optim.step()

    d_bare.requires_grad_(True)
    d_optim.optimizer.zero_grad(set_to_none=True)
    fake = sr.detach()
    d_loss = torch.zeros((), device=lr.device)
    for images, real in ((hr, True), (fake, False)):
        with precision.autocast():
            loss = adversarial_loss(d_net(images), real=real)
        d_optim.backward(loss)
        d_loss = d_loss + loss.detach()
    d_optim.step()
    g_optim.scheduler.step()
    d_optim.scheduler.step()
    return {"loss": g_loss.detach(), "content": content.detach(), "adv": adv.detach(),
            "perceptual": vgg.detach().float(), "d": d_loss}
