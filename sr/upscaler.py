"""A model loaded once, with what the enlarger and the scorer need to know about it.

    up = Upscaler.load("fsrcnn_x3")              # a shipped name, a .pth checkpoint, a .onnx export, a community model
    image, kind = enlarge(up, read_photo("in.jpg", compact=True), "jpg", outscale=2.5)   # sr.enlarge
    scored = up.score(lr, hr)                    # the protocol (sr.evaluation scores whole images)

The weights policy is ``sr.weights``, the fast layer forms ``sr.models.inference_forms``, the
tile-by-tile enlarger ``sr.enlarge``, the protocol's forward and scores ``sr.protocol``.

Two input paths, on purpose:
- enlarging (``sr.enlarge``) computes from float input: 16-bit photos keep their precision, and
  the pre-upsampling of upsampled-layout models and the Y of Y models stay unrounded.
- ``score`` (the protocol) feeds the model exactly what training data holds: 8-bit LR,
  pre-upsampled and converted to Y with rounding to 8 bits, as prepare_h5.py does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sr.checkpoint import is_checkpoint, load_checkpoint, model_from_checkpoint
from sr.data.degradation import model_input
from sr.errors import UserError
from sr.imresize import imresize
from sr.models.inference_forms import for_inference
from sr.models.self_ensemble import SelfEnsemble
from sr.onnx_runtime import OnnxModel
from sr.precision import Precision, choose_precision
from sr.protocol import Scored, bicubic_score, predict, score, to_rgb_image, toward_bicubic
from sr.weights import DEFAULT_WEIGHTS, PHOTO_WEIGHTS, Choice, blended_checkpoint, load_choice, resolve_weights
from sr.zoo import load_zoo

# Scoring runs an image over this many LR pixels in tiles of AUTO_TILE model-input pixels
# (``--tile`` overrides it); the enlarger sizes its own tiles (``sr.enlarge``).
AUTO_TILE, AUTO_TILE_ABOVE = 256, 512 * 512


class Upscaler:
    """A network with what it needs to know about itself.

    ``net`` is the network in eval mode (an ``nn.Module``, or an ``OnnxModel`` run by
    onnxruntime), or None for plain bicubic. ``scale``: its enlargement; ``color``: "y" or
    "rgb"; ``layout``: "upsampled" (fed the bicubic enlargement) or "lr-hr". ``precision``
    says whether it runs under bf16 autocast and channels-last. ``tile``: the side, in
    model-input pixels, of the tiles the whole network runs on; None sizes them automatically.
    ``detail``: the share of the network's difference from bicubic that is kept (1: its output as
    it is; ``sr.weights.Anchor.detail`` for a lossy file), in enlarging and scoring alike.
    """

    def __init__(self, net: nn.Module | None, *, arch: str, scale: int, color: str = "rgb", layout: str = "lr-hr",
                 device: torch.device | str = "cpu", precision: Precision | None = None, path: Path | None = None,
                 tile: int | None = None, name: str | None = None):
        self.net, self.arch, self.scale, self.color, self.layout = net, arch, int(scale), color, layout
        self.name = name  # a shipped checkpoint's name (real_srresnet_x4), which its architecture alone does not tell
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device.type, None, False)
        self.path, self.tile = path, tile
        self.detail = 1.0

    @classmethod
    def load(cls, spec: str | Path, device: torch.device | str = "cpu", amp: bool | None = None,
             tile: int | None = None, weights_dir: Path | None = None) -> Upscaler:
        """Load a shipped name, one of our checkpoints (.safetensors or .pth), a .onnx export, or any
        other model file spandrel recognises (``sr.zoo``, the [zoo] extra), once.

        ``amp``: None follows the hardware (bf16 autocast where the device has it natively,
        ``sr.precision.choose_precision``), True/False force it. ONNX models run in fp32 on
        the CPU under onnxruntime, so ``amp=True`` is refused for them.
        """
        path = resolve_weights(spec, weights_dir)
        device = torch.device(device)
        if path.suffix.lower() == ".onnx":
            if amp:
                raise UserError(f"{path}: an ONNX model runs in fp32 under onnxruntime; --amp applies to .pth weights")
            net = OnnxModel(path)
            cpu = torch.device("cpu")
            return cls(net, arch=net.arch, scale=net.scale, color=net.color, layout=net.layout, device=cpu,
                       precision=Precision("cpu", None, False), path=path, tile=tile)
        if not is_checkpoint(path):  # a community model: spandrel finds its architecture
            net, arch, scale, precision = load_zoo(path, device, amp)
            return cls(net, arch=arch, scale=scale, color="rgb", layout="lr-hr", device=device, precision=precision,
                       path=path, tile=tile, name=path.stem)
        return cls.from_state(load_checkpoint(path), device, amp, tile, path)

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu", amp: bool | None = None,
                   tile: int | None = None, path: Path | None = None) -> Upscaler:
        """One of our checkpoints already read (``sr.checkpoint.load_checkpoint``, or a blend of two)."""
        device = torch.device(device)
        precision = choose_precision(device, amp)
        net = for_inference(model_from_checkpoint(state, path or "checkpoint")).to(device)
        if precision.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return cls(net, arch=state["arch"], scale=state["scale"], color=state["color"], layout=state["layout"],
                   device=device, precision=precision, path=path, tile=tile, name=state.get("name"))

    @classmethod
    def chosen(cls, choice: Choice, device: torch.device | str = "cpu", amp: bool | None = None,
               tile: int | None = None) -> Upscaler:
        """What the picker chose for a file: a shipped model, blended toward its heavy anchor when the
        file was heavily compressed (``sr.weights.load_choice``)."""
        if not choice.heavy:
            up = cls.load(choice.weights, device, amp, tile)
        else:
            up = cls.from_state(load_choice(choice), device, amp, tile, resolve_weights(choice.weights))
        up.detail = choice.detail
        if choice.passes != 1:
            up.net = SelfEnsemble(up.net, choice.passes)
        return up

    @classmethod
    def blend(cls, strength: float, device: torch.device | str = "cpu", amp: bool | None = None,
              tile: int | None = None) -> Upscaler:
        """--denoise: DEFAULT_WEIGHTS and PHOTO_WEIGHTS blended weight by weight (``sr.weights.blended_checkpoint``),
        loaded like any checkpoint."""
        blend = blended_checkpoint(load_checkpoint(resolve_weights(DEFAULT_WEIGHTS)),
                                   load_checkpoint(resolve_weights(PHOTO_WEIGHTS)), strength)
        return cls.from_state(blend, device, amp, tile)

    @classmethod
    def bicubic(cls, scale: int) -> Upscaler:
        """Plain MATLAB bicubic in the same interface (no network)."""
        return cls(None, arch="bicubic", scale=scale)

    def output_tag(self, factor: float) -> str:
        """What enlarged files are named after: the shipped name without its scale, else the
        architecture, then the factor: "real_srresnet_x4", "fsrcnn-paper_x3.5". Two shipped
        models of one architecture (srresnet_x4, real_srresnet_x4) so never write the same file."""
        base = self.name.rsplit("_x", 1)[0] if self.name else self.arch
        return f"{base}_x{factor:g}"

    @property
    def is_onnx(self) -> bool:
        return isinstance(self.net.net if isinstance(self.net, SelfEnsemble) else self.net, OnnxModel)

    @property
    def passes(self) -> int:
        """Self-ensemble passes the network runs (1: none; ``sr.models.self_ensemble``)."""
        return self.net.passes if isinstance(self.net, SelfEnsemble) else 1

    @property
    def input_scale(self) -> int:
        """The network's own output/input size ratio: ``scale``, or 1 for pre-upsampled models
        (as ``sr.models.ModelSpec.input_scale``)."""
        return self.scale if self.layout == "lr-hr" else 1

    def describe(self) -> str:
        """One line: what runs and how, e.g. "fsrcnn-paper x3 (y, lr-hr), fp32 (...), channels-last"."""
        if self.net is None:
            return f"bicubic x{self.scale}"
        how = "onnxruntime fp32 on the CPU" if self.is_onnx else self.precision.describe()
        source = self.path or f"{self.name}, blended here"  # --denoise: two shipped models, never a file
        passes = f", self-ensemble of {self.passes} passes" if self.passes != 1 else ""
        return f"{self.arch} x{self.scale} ({self.color}, {self.layout}) from {source}; {how}{passes}"

    def score(self, lr: np.ndarray, hr: np.ndarray, protocol: str = "basicsr") -> Scored:
        """Reconstruct ``lr`` ((h, w, 3) uint8) from the model input training data holds, and
        score it against ``hr`` (its mod-cropped ground truth)."""
        if self.net is None:
            return bicubic_score(lr, hr, self.scale, protocol)
        inputs = model_input(lr, self.scale, self.layout, self.color)
        lr_pixels = lr.shape[0] * lr.shape[1]
        tile = self.tile or (AUTO_TILE if lr_pixels > AUTO_TILE_ABOVE else None)
        pred = predict(self.net, inputs, self.input_scale, self.device, self.precision, tile)
        pred = toward_bicubic(pred, lr, self.scale, self.detail)  # as the enlarger does
        # A Y model's chroma: the unrounded bicubic's, as the enlarger colours it (sr.enlarge)
        image = to_rgb_image(pred, imresize(lr.astype(np.float64), float(self.scale)) if pred.shape[0] == 1 else None)
        return Scored(image, score(pred, hr, self.scale, protocol))
