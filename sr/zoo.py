"""Community models (Real-ESRGAN, SwinIR, HAT, SPAN, ... whatever spandrel detects) in this enlarger.

    up = Upscaler.load("RealESRGAN_x4plus.pth")   # not one of ours: its architecture is detected here

spandrel (the optional extra ``pip install -e ".[zoo]"``) is imported only here, and only when a
weights file is not one of this project's checkpoints. It is given a state dict read here, never a
path: .safetensors after ``sr.tensor_file.read_header`` has checked the header against the file,
.pth/.pt/.ckpt with ``torch.load(weights_only=True)`` after ``sr.torch_archive``'s checks (no
pickled code runs, TorchScript is refused). Both under the bounds below, before any tensor is read.
The model then runs through the project's one forward (``sr.protocol.predict``), tiles, precision
and photo handling like a model of ours, as an RGB, LR -> HR ("lr-hr") network.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from sr.torch_archive import load_state_file
from sr.errors import UserError, first_line
from sr.precision import Precision, choose_precision
from sr.tensor_file import load_tensors, read_header
from sr.tiling import receptive_radius

# The largest models on OpenModelDB (HAT-L, DAT-2, RGT) are 80-300 MB as float32; 2 GB leaves room
# and still refuses a file that would take the memory of a small machine to read.
MAX_FILE_BYTES = 2 << 30
MAX_TENSORS = 20_000  # HAT-L has about 3,000
MAX_SCALE = 16
# The tiling margin, in LR pixels. A network of convolutions gets its exact receptive radius up to
# this; deeper ones (ESRGAN's 23 RRDBs: about 350) and windowed attention (SwinIR, HAT) see further
# than any practical margin, and get this one: their tile seams differ by a little, as in
# Real-ESRGAN's own tiling (its --tile_pad is 10).
MAX_MARGIN = 32
SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def require_spandrel() -> ModuleType:
    """spandrel, or a one-line UserError saying how to install it."""
    try:
        import spandrel
    except ImportError:
        raise UserError('this is not one of this project\'s checkpoints; community models (Real-ESRGAN, SwinIR, HAT, '
                        '...) need spandrel: pip install -e ".[zoo]"') from None
    return spandrel


def architectures() -> list[str]:
    """The names of the architectures spandrel detects (the ones it ships), sorted."""
    spandrel = require_spandrel()
    return sorted({support.architecture.name for support in spandrel.MAIN_REGISTRY.architectures()}, key=str.lower)


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The state dict in a third-party weights file, read without running pickled code and within
    MAX_FILE_BYTES and MAX_TENSORS; UserError in one line otherwise."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} (MAX_FILE_BYTES in sr/zoo.py)")
    if path.suffix.lower() == ".safetensors":
        return load_tensors(path, read_header(path, MAX_FILE_BYTES, MAX_TENSORS))
    state = load_state_file(path, MAX_FILE_BYTES, MAX_TENSORS)
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds {type(state).__name__}, not a state dict")
    return state


class ZooNet(nn.Module):
    """A spandrel model as a network of this project: (N, 3, h, w) in [0, 1] -> (N, 3, h * scale, w * scale).

    spandrel's descriptor pads each input to the sizes the architecture needs (SwinIR: a multiple
    of its window) and crops the output back. ``receptive_radius`` is the tiling margin (MAX_MARGIN).
    """

    def __init__(self, descriptor: Any):
        super().__init__()
        self.model = descriptor.model  # registered, so .to(), .modules() and the tiling hooks see its layers
        self.descriptor = descriptor
        self.receptive_radius = min(receptive_radius(self.model), MAX_MARGIN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.descriptor(image[None]) for image in x]) if len(x) > 1 else self.descriptor(x)


def load_zoo(path: str | Path, device: torch.device, amp: bool | None) -> tuple[ZooNet, str, int, Precision]:
    """A community model: (network in eval mode on ``device``, "zoo:<architecture>", scale, precision).

    ``amp`` None follows the hardware where the architecture supports bf16 (spandrel says which),
    fp32 elsewhere; ``amp=True`` on one that does not is refused.
    """
    path = Path(path)
    spandrel = require_spandrel()
    state = read_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise UserError(f"{path}: neither a checkpoint of this project nor an architecture spandrel detects "
                        f"(python -c \"import sr.zoo; print(sr.zoo.architectures())\" lists them)") from None
    except (RuntimeError, ValueError, KeyError, TypeError, AssertionError, IndexError) as exc:
        raise UserError(f"{path}: spandrel could not build it ({first_line(exc, 120)})") from None
    name = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UserError(f"{path}: a {name} model for {descriptor.purpose.lower()}, not an image enlarger")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise UserError(f"{path}: {name} with {descriptor.input_channels} input and {descriptor.output_channels} "
                        "output channels; this enlarger runs RGB models (3 and 3)")
    if not 2 <= descriptor.scale <= MAX_SCALE:
        raise UserError(f"{path}: a {name} x{descriptor.scale} model ({descriptor.purpose}); this enlarger runs "
                        f"models that enlarge 2 to {MAX_SCALE} times")
    device = torch.device(device)
    precision = choose_precision(device, amp)
    if precision.enabled and not descriptor.supports_bfloat16:
        if amp:
            raise UserError(f"{path}: {name} does not run in bfloat16 (spandrel says so); leave out --amp")
        precision = Precision(device.type, None, precision.channels_last, "hardware")
    descriptor.eval()
    net = ZooNet(descriptor).to(device)
    if precision.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, f"zoo:{name}", int(descriptor.scale), precision

