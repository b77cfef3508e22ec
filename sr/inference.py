"""The enlarger: a model loaded once, then used to enlarge photos or to score images.

    up = Upscaler.load("fsrcnn_x3")              # a shipped name, a .pth checkpoint or a .onnx export
    image, kind = up.enlarge_image(read_photo("in.jpg", compact=True), "jpg", outscale=2.5)  # streamed
    big = up.enlarge(rgb)                        # whole image: (h, w, 3) in [0, 255] -> (3h, 3w, 3) float
    scored = up.score(lr, hr)                    # the protocol (sr.evaluation scores whole images)

eval.py is flags and printing around this; experiments/ and bench/ use it directly. The
weights policy is ``sr.weights``, the fast layer forms ``sr.models.inference_forms``, the one
forward pass ``sr.protocol.predict``, the tile-by-tile photo path ``sr.streaming``.

Two input paths, on purpose:
- ``enlarge_image`` / ``enlarge`` (photos) compute from float input: 16-bit photos keep their
  precision, and the pre-upsampling of upsampled-layout models and the Y of Y models stay unrounded.
- ``score`` (the protocol) feeds the model exactly what training data holds: 8-bit LR,
  pre-upsampled and converted to Y with rounding to 8 bits, as prepare_h5.py does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from sr.checkpoint import is_checkpoint, load_checkpoint, model_from_checkpoint
from sr.color import rgb_to_ycbcr, ycbcr_to_rgb
from sr.data.degradation import model_input, upscale
from sr.errors import UserError
from sr.imresize import imresize
from sr.models.inference_forms import for_inference
from sr.onnx_runtime import OnnxModel
from sr.photo import OutputKind, Photo
from sr.photo_enlarge import enlarge_photo
from sr.precision import Precision, choose_precision
from sr.protocol import Scored, bicubic_score, predict, score, to_rgb_image
from sr.streaming import AUTO_TILE, AUTO_TILE_ABOVE, enlarge_streaming
from sr.weights import resolve_weights
from sr.zoo import load_zoo

class Upscaler:
    """A network with what it needs to know about itself, ready to enlarge images.

    ``net`` is the network in eval mode (an ``nn.Module``, or an ``OnnxModel`` run by
    onnxruntime), or None for plain bicubic. ``scale``: its enlargement; ``color``: "y" or
    "rgb"; ``layout``: "upsampled" (fed the bicubic enlargement) or "lr-hr". ``precision``
    says whether it runs under bf16 autocast and channels-last. ``tile``: tile side in
    model-input pixels; None tiles automatically above ``sr.streaming.AUTO_TILE_ABOVE`` LR pixels.
    """

    def __init__(self, net: nn.Module | None, *, arch: str, scale: int, color: str = "rgb", layout: str = "lr-hr",
                 device: torch.device | str = "cpu", precision: Precision | None = None, path: Path | None = None,
                 tile: int | None = None, name: str | None = None):
        self.net, self.arch, self.scale, self.color, self.layout = net, arch, int(scale), color, layout
        self.name = name  # a shipped checkpoint's name (real_srresnet_x4), which its architecture alone does not tell
        self.device = torch.device(device)
        self.precision = precision or Precision(self.device.type, None, False)
        self.path, self.tile = path, tile

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
        state = load_checkpoint(path)
        precision = choose_precision(device, amp)
        net = for_inference(model_from_checkpoint(state, path)).to(device)
        if precision.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return cls(net, arch=state["arch"], scale=state["scale"], color=state["color"], layout=state["layout"],
                   device=device, precision=precision, path=path, tile=tile, name=state.get("name"))

    def output_tag(self, factor: float) -> str:
        """What enlarged files are named after: the shipped name without its scale, else the
        architecture, then the factor: "real_srresnet_x4", "fsrcnn-paper_x3.5". Two shipped
        models of one architecture (srresnet_x4, real_srresnet_x4) so never write the same file."""
        base = self.name.rsplit("_x", 1)[0] if self.name else self.arch
        return f"{base}_x{factor:g}"

    @classmethod
    def bicubic(cls, scale: int) -> Upscaler:
        """Plain MATLAB bicubic in the same interface (no network)."""
        return cls(None, arch="bicubic", scale=scale)

    @property
    def is_onnx(self) -> bool:
        return isinstance(self.net, OnnxModel)

    @property
    def model_scale(self) -> int:
        """The network's own output/input size ratio (1 for pre-upsampled models)."""
        return self.scale if self.layout == "lr-hr" else 1

    def describe(self) -> str:
        """One line: what runs and how, e.g. "fsrcnn-paper x3 (y, lr-hr), fp32 (...), channels-last"."""
        if self.net is None:
            return f"bicubic x{self.scale}"
        how = "onnxruntime fp32 on the CPU" if self.is_onnx else self.precision.describe()
        return f"{self.arch} x{self.scale} ({self.color}, {self.layout}) from {self.path}; {how}"

    def _forward(self, inputs: np.ndarray) -> torch.Tensor:
        """The network on a whole model input: (C, h, w) in [0, 255] -> (C, H, W) float32 in [0, 1], CPU."""
        if self.net is None:
            raise ValueError("plain bicubic has no network to run")
        lr_pixels = inputs.shape[-2] * inputs.shape[-1] // (self.scale // self.model_scale) ** 2
        tile = self.tile or (AUTO_TILE if lr_pixels > AUTO_TILE_ABOVE else None)
        return predict(self.net, inputs, self.model_scale, self.device, self.precision, tile)

    # ------------------------------------------------------------------ the protocol

    def score(self, lr: np.ndarray, hr: np.ndarray, protocol: str = "basicsr") -> Scored:
        """Reconstruct ``lr`` ((h, w, 3) uint8) from the model input training data holds, and
        score it against ``hr`` (its mod-cropped ground truth)."""
        if self.net is None:
            return bicubic_score(lr, hr, self.scale, protocol)
        pred = self._forward(model_input(lr, self.scale, self.layout, self.color))
        image = to_rgb_image(pred, upscale(lr, self.scale) if pred.shape[0] == 1 else None)
        return Scored(image, score(pred, hr, self.scale, protocol))

    # ------------------------------------------------------------------ photos

    def enlarge_image(self, photo: Photo, fmt: str, outscale: float | None = None, alpha_upsampler: str = "bicubic",
                      progress: bool = False) -> tuple[Image.Image, OutputKind]:
        """``photo`` enlarged tile by tile into the image to write as ``fmt`` (``sr.streaming``):
        bounded memory, the picture ``enlarge_photo`` gives within 1/255."""
        return enlarge_streaming(self, photo, fmt, outscale, alpha_upsampler, progress)

    def enlarge(self, rgb: np.ndarray) -> np.ndarray:
        """The whole image: (h, w, 3) RGB in [0, 255], uint8 or float -> (h * scale, w * scale, 3) float in [0, 255], unrounded.

        Nothing is rounded on the way: upsampled-layout models get the float bicubic
        enlargement, Y models the float Y. A Y model's output takes its colour (Cb, Cr)
        from the bicubic enlargement.
        """
        rgb = np.asarray(rgb, dtype=np.float64)
        if self.net is None:
            return np.clip(imresize(rgb, self.scale), 0, 255)
        if self.color == "rgb":
            source = imresize(rgb, self.scale) if self.layout == "upsampled" else rgb
            out = self._forward(source.transpose(2, 0, 1)).numpy()  # (3, H, W) float32 in [0, 1]
            big = out.transpose(1, 2, 0) * np.float32(255.0)  # stays float32: the big image at half the memory
            return np.clip(big, 0, 255, out=big)
        # Y models. YCbCr is affine per pixel and bicubic is linear with weights summing to 1,
        # so enlarging the LR's YCbCr equals taking YCbCr of the enlarged RGB (to float
        # rounding), and only the planes that are used get enlarged.
        ycbcr = rgb_to_ycbcr(rgb)
        if self.layout == "upsampled":
            big = imresize(ycbcr, self.scale)  # its Y is the model's input
            big[..., 0] = self._forward(big[None, ..., 0])[0].numpy() * 255.0
        else:
            y = self._forward(ycbcr[None, ..., 0])[0].numpy()
            big = np.empty(y.shape + (3,))
            big[..., 0] = y * 255.0
            big[..., 1:] = imresize(ycbcr[..., 1:], self.scale)
        big = ycbcr_to_rgb(big)
        return np.clip(big, 0, 255, out=big)

    def enlarge_photo(self, photo: Photo, outscale: float | None = None, alpha_upsampler: str = "bicubic") -> Photo:
        """``sr.photo_enlarge.enlarge_photo`` with this model, on the whole image: alpha, grey and
        16-bit kept; then MATLAB bicubic to ``outscale`` (None: the model's scale). The reference
        the streaming ``enlarge_image`` is tested against; it holds every stage whole, in float64."""
        if self.net is None:  # one bicubic straight to the final size, not two
            return enlarge_photo(photo, lambda rgb: rgb, 1, outscale or self.scale, alpha_upsampler)
        return enlarge_photo(photo, self.enlarge, self.scale, outscale, alpha_upsampler)
