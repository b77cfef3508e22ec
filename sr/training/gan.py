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
from sr.training.content import Optim
from sr.training.loader import to_device

GAN_FIELDS = ["epoch", "loss", "content", "adv", "perceptual", "d", "psnr", "ssim", "lr", "seconds", "samples_per_s"]


def add_gan_args(p: argparse.ArgumentParser) -> None:
    """train_srgan.py's own flags (GanConfig's settings)."""
    p.add_argument("--phase", choices=("pretrain", "gan"), default="pretrain", help="default pretrain")
    p.add_argument("--generator", type=Path, help="gan: the pretrained generator checkpoint to start from")
    p.add_argument("--adv-weight", type=positive_float, default=1e-3, help="weight of the adversarial loss (default 1e-3)")
    p.add_argument("--d-lr", type=positive_float, help="discriminator learning rate (default: --lr)")
    p.add_argument("--perceptual-weight", type=float, default=0.0, help="weight of the VGG19 feature loss (default 0: off)")
    p.add_argument("--vgg-weights", type=Path, help="torchvision vgg19 state_dict file for the perceptual loss (never downloaded)")
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


class GanStep:
    """One SRGAN iteration (the order of BasicSR's SRGANModel):

    1. generator: D frozen; loss = content + adv_weight * BCE(D(G(lr)), real) [+ perceptual];
    2. discriminator: BCE(D(hr), real) and BCE(D(G(lr).detach()), fake), one backward each.

    In step 1 the bare D is called, not its DDP wrapper: D gets no gradients there, and a
    DDP module must see a backward for every forward.
    """

    def __init__(self, *, g_net: nn.Module, d_bare: nn.Module, d_net: nn.Module, criterion: nn.Module, g_optim: Optim,
                 d_optim: Optim, precision: Precision, device: torch.device, adv_weight: float,
                 perceptual: nn.Module | None = None, perceptual_weight: float = 0.0):
        self.g_net, self.d_bare, self.d_net = g_net, d_bare, d_net
        self.criterion, self.perceptual = criterion, perceptual
        self.adv_weight, self.perceptual_weight = adv_weight, perceptual_weight
        self.g_optim, self.d_optim = g_optim, d_optim
        self.precision, self.device = precision, device

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        lr = to_device(lr, self.device, self.precision.channels_last)
        hr = to_device(hr, self.device, self.precision.channels_last)
        self.d_bare.requires_grad_(False)
        with self.precision.autocast():
            sr = self.g_net(lr)
            adv = adversarial_loss(self.d_bare(sr), real=True)
            perceptual = self.perceptual(sr, hr) if self.perceptual is not None else torch.zeros((), device=self.device)
        content = self.criterion(sr.float(), hr)
        g_loss = content + self.adv_weight * adv + self.perceptual_weight * perceptual
        self.g_optim.optimizer.zero_grad(set_to_none=True)
        self.g_optim.backward(g_loss)
        self.g_optim.step()

        self.d_bare.requires_grad_(True)
        self.d_optim.optimizer.zero_grad(set_to_none=True)
        fake = sr.detach()
        d_loss = torch.zeros((), device=self.device)
        for images, real in ((hr, True), (fake, False)):
            with self.precision.autocast():
                loss = adversarial_loss(self.d_net(images), real=real)
            self.d_optim.backward(loss)
            d_loss = d_loss + loss.detach()
        self.d_optim.step()
        self.g_optim.scheduler.step()
        self.d_optim.scheduler.step()
        return {"loss": g_loss.detach(), "content": content.detach(), "adv": adv.detach(),
                "perceptual": perceptual.detach().float(), "d": d_loss}

    def current_lr(self) -> float:
        return self.g_optim.current_lr()
