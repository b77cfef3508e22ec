"""The name -> model table that the scripts' ``--arch`` choices and the tests read.

Each entry says how a model sees the data: ``layout`` "upsampled" models take the
bicubic-upsampled image and return one of the same size; "lr-hr" models take the LR
image and enlarge it by ``scale`` themselves. ``color`` is the default colour space
("y": one channel, "rgb": three). A checkpoint stores the name and the exact keyword
arguments, so ``rebuild`` gives back the same network without any flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sr.models.discriminator import Discriminator
from sr.models.fsrcnn import FSRCNN
from sr.models.srcnn import SRCNN
from sr.models.srresnet import SRResNet

LAYOUTS = ("upsampled", "lr-hr")
COLORS = {"y": 1, "rgb": 3}


@dataclass(frozen=True)
class ModelSpec:
    cls: type[nn.Module]
    layout: str
    color: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    family: str = "srcnn"  # which training script the model belongs to: "srcnn" or "srgan"

    def input_scale(self, scale: int) -> int:
        """How much the model itself enlarges its input: ``scale`` for "lr-hr", 1 for "upsampled"
        (those read the bicubic-upsampled image)."""
        return scale if self.layout == "lr-hr" else 1


MODELS: dict[str, ModelSpec] = {
    "srcnn": ModelSpec(SRCNN, "upsampled", "y"),
    "fsrcnn": ModelSpec(FSRCNN, "upsampled", "y", dict(d=56, s=12, m=4)),
    "fsrcnn-in": ModelSpec(FSRCNN, "upsampled", "y", dict(d=64, s=32, m=4, mapping_kernel=1, mapping_norm=True)),
    "fsrcnn-wide": ModelSpec(FSRCNN, "upsampled", "y", dict(d=64, s=32, m=4, mapping_kernel=3)),
    "fsrcnn-paper": ModelSpec(FSRCNN, "lr-hr", "y", dict(d=56, s=12, m=4)),
    # fsrcnn-paper with fsrcnn-wide's widths: ~4x the parameters (still ~30x fewer than SRResNet),
    # the room to undo JPEG's blocks as well as enlarge (the fast model of real_fsrcnn_x4).
    "fsrcnn-large": ModelSpec(FSRCNN, "lr-hr", "y", dict(d=64, s=32, m=4)),
    # fsrcnn-large with twice the mapping layers: the receptive field grows from 13 to 21 LR px,
    # over two JPEG blocks, for ~1.8x the time (a candidate for the fast photo model).
    "fsrcnn-deep": ModelSpec(FSRCNN, "lr-hr", "y", dict(d=64, s=32, m=8)),
    "srresnet": ModelSpec(SRResNet, "lr-hr", "rgb", dict(norm="all"), family="srgan"),
    "srresnet-noin": ModelSpec(SRResNet, "lr-hr", "rgb", dict(norm="none"), family="srgan"),
    "srresnet-tailin": ModelSpec(SRResNet, "lr-hr", "rgb", dict(norm="tail"), family="srgan"),
}


def list_models(family: str | None = None) -> list[str]:
    """Registered names, optionally only those of one training family."""
    return [name for name, spec in MODELS.items() if family is None or spec.family == family]


def model_kwargs(name: str, scale: int, color: str | None = None) -> dict[str, Any]:
    """The full keyword arguments that build ``name`` for ``scale`` and ``color``."""
    spec = MODELS[name]
    kwargs = dict(spec.kwargs, channels=COLORS[color or spec.color])
    if spec.layout == "lr-hr":
        kwargs["scale"] = scale
    return kwargs


def create_model(name: str, scale: int, color: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build a registered model; returns it with the kwargs to store in a checkpoint.

    Raises ValueError when the model cannot work at ``scale`` (SRResNet needs 2, 4 or 8).
    """
    kwargs = model_kwargs(name, scale, color)
    return MODELS[name].cls(**kwargs), kwargs


def rebuild(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Build the model a checkpoint describes."""
    return MODELS[name].cls(**kwargs)


__all__ = ["COLORS", "Discriminator", "LAYOUTS", "MODELS", "ModelSpec", "create_model", "list_models", "model_kwargs", "rebuild"]
