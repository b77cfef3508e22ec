"""Inference: a model loaded once, then used to enlarge photos or to score images.

    up = Upscaler.load("fsrcnn_x3")              # a shipped name, a .pth checkpoint or a .onnx export
    big = up.enlarge(rgb)                        # (h, w, 3) in [0, 255] -> (3h, 3w, 3) float, unrounded
    photo = up.enlarge_photo(read_photo("in.png"), outscale=2.5)
    result = evaluate_image("butterfly.png", 3, up)   # the protocol: degrade, reconstruct, score

eval.py is flags and printing around this; experiments/ and bench/ use it directly.

Two input paths, on purpose:
- ``enlarge`` (photos) computes from float input: 16-bit photos keep their precision, and
  the pre-upsampling of upsampled-layout models and the Y of Y models stay unrounded.
- ``predict``/``score`` (the protocol) feed the model exactly what training data holds:
  8-bit LR, pre-upsampled and converted to Y with rounding to 8 bits, as prepare_h5.py does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.color import rgb_to_ycbcr, ycbcr_to_rgb
from sr.data.degradation import model_input, upscale
from sr.errors import UserError
from sr.protocol import Scored, bicubic_score, degrade, ground_truth, predict, score, to_rgb_image
from sr.imresize import imresize
from sr.models.fsrcnn import FSRCNN
from sr.models.srresnet import SRResNet
from sr.onnx_runtime import OnnxModel
from sr.photo import Photo
from sr.photo_enlarge import enlarge_photo
from sr.precision import Precision, choose_precision
from sr.weights import resolve_weights

# LR inputs larger than this are tiled unless a tile is given: a 12-megapixel photo enlarged
# x4 untiled would need tens of GB for SRResNet's full-resolution activations.
AUTO_TILE, AUTO_TILE_ABOVE = 256, 512 * 512


# ---------------------------------------------------------------------- faster, same function


def subpixel_deconv(deconv: nn.ConvTranspose2d) -> nn.Sequential:
    """A stride-r transposed convolution as a convolution on the input grid with r*r times the
    output channels, then PixelShuffle(r): the same function (up to float rounding).

    Output pixel (r*i + s) of the transposed conv reads input pixel i - d through kernel tap
    r*d + s + padding, for the few d where that tap exists; those taps become one small
    kernel per sub-pixel position s. oneDNN has no fast transposed convolution on the CPU
    (FSRCNN x3's 9x9 deconv took 60% of its time); a plain 3x3 convolution is fast.
    Needs groups 1, dilation 1 and an output exactly r times the input.
    """
    r, k, pad = deconv.stride[0], deconv.kernel_size[0], deconv.padding[0]
    if (deconv.stride[1], deconv.kernel_size[1], deconv.padding[1]) != (r, k, pad) or deconv.groups != 1 \
            or deconv.dilation != (1, 1) or k - 2 * pad + deconv.output_padding[0] != r:
        raise ValueError(f"not a square, ungrouped, exactly x{r} transposed convolution: {deconv}")
    w = deconv.weight.detach().double()  # (in, out, k, k)
    c_in, c_out = w.shape[:2]
    taps = {s: [d for d in range(-k, k + 1) if 0 <= r * d + s + pad < k] for s in range(r)}
    reach = max(abs(d) for ds in taps.values() for d in ds)  # a symmetric kernel keeps receptive_radius right
    size = 2 * reach + 1
    kernel = torch.zeros(c_out * r * r, c_in, size, size, dtype=torch.float64)
    for sy in range(r):
        for sx in range(r):
            for dy in taps[sy]:
                for dx in taps[sx]:
                    # out channel c * r * r + sy * r + sx reads x[i - dy, j - dx]: kernel index reach - d
                    kernel[sy * r + sx :: r * r, :, reach - dy, reach - dx] = \
                        w[:, :, r * dy + sy + pad, r * dx + sx + pad].T
    conv = nn.Conv2d(c_in, c_out * r * r, size, padding=reach, bias=deconv.bias is not None)
    conv.weight.data.copy_(kernel)
    if deconv.bias is not None:
        conv.bias.data.copy_(deconv.bias.detach().repeat_interleave(r * r))
    return nn.Sequential(conv, nn.PixelShuffle(r)).to(deconv.weight.device)


def subpixel_tail(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """The k x k ``conv`` applied after PixelShuffle(r), as a convolution before it: (C*r*r)
    inputs, (C_out*r*r) outputs on the r-times smaller grid, to be followed by PixelShuffle(r).

    SRResNet's last 9x9 conv has 3 outputs at the full output size, a shape oneDNN runs at a
    fraction of its speed (a third of SRResNet x4's time); on the sub-pixel grid it has 12
    outputs over a quarter of the pixels, about three times faster, the same function.
    """
    k, half = conv.kernel_size[0], conv.kernel_size[0] // 2
    if conv.kernel_size[1] != k or conv.groups != 1 or conv.dilation != (1, 1) or conv.stride != (1, 1) \
            or conv.padding != (half, half):
        raise ValueError(f"not a square, same-size, ungrouped convolution: {conv}")
    w = conv.weight.detach().double()  # (out, in, k, k)
    c_out, c_in = w.shape[:2]
    span = (half + r - 1) // r  # sub-pixel grid offsets m in [-span, span]
    kernel = torch.zeros(c_out * r * r, c_in * r * r, 2 * span + 1, 2 * span + 1, dtype=torch.float64)
    for sy in range(r):
        for dy in range(-half, half + 1):
            ay, my = (sy + dy) % r, (sy + dy) // r  # output row r*i + sy + dy = r*(i + my) + ay
            for sx in range(r):
                for dx in range(-half, half + 1):
                    ax, mx = (sx + dx) % r, (sx + dx) // r
                    kernel[sy * r + sx :: r * r, ay * r + ax :: r * r, my + span, mx + span] += w[:, :, dy + half, dx + half]
    out = nn.Conv2d(c_in * r * r, c_out * r * r, 2 * span + 1, padding=span, bias=conv.bias is not None)
    out.weight.data.copy_(kernel)
    if conv.bias is not None:
        out.bias.data.copy_(conv.bias.detach().repeat_interleave(r * r))
    return out.to(conv.weight.device)


def for_inference(net: nn.Module) -> nn.Module:
    """Rewrite the layers oneDNN runs slowly into equivalent fast ones, in place (eval only):
    FSRCNN's transposed conv (``subpixel_deconv``) and SRResNet's last conv after its last
    PixelShuffle (``subpixel_tail``). Outputs agree with the checkpoint's network to ~1e-6;
    other models are returned as they are. Never for training or export (the checkpoint's
    layout is the one that is saved)."""
    if isinstance(net, FSRCNN) and isinstance(net.deconv, nn.ConvTranspose2d):
        net.deconv = subpixel_deconv(net.deconv)
    elif isinstance(net, SRResNet) and isinstance(net.tail, nn.Conv2d) and len(net.upsample) >= 3:
        *stages, shuffle, act = list(net.upsample)
        if isinstance(shuffle, nn.PixelShuffle) and isinstance(act, nn.LeakyReLU):
            # conv -> shuffle -> LeakyReLU -> tail  ==  conv -> LeakyReLU -> tail' -> shuffle
            # (an elementwise activation commutes with the shuffle; zero padding maps to zero padding)
            r = shuffle.upscale_factor
            net.upsample = nn.Sequential(*stages)
            net.tail = nn.Sequential(act, subpixel_tail(net.tail, r), nn.PixelShuffle(r))
    return net


class Upscaler:
    """A network with what it needs to know about itself, ready to enlarge images.

    ``net`` is the network in eval mode (an ``nn.Module``, or an ``OnnxModel`` run by
    onnxruntime), or None for plain bicubic. ``scale``: its enlargement; ``color``: "y" or
    "rgb"; ``layout``: "upsampled" (fed the bicubic enlargement) or "lr-hr". ``precision``
    says whether it runs under bf16 autocast and channels-last. ``tile``: tile side in
    model-input pixels; None tiles automatically above ``AUTO_TILE_ABOVE`` LR pixels.
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
        """Load a .pth checkpoint, a shipped name or a .onnx export once.

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

    def _require_net(self) -> nn.Module:
        if self.net is None:
            raise ValueError("plain bicubic has no network to run")
        return self.net

    def run(self, inputs: np.ndarray) -> torch.Tensor:
        """The network on its input: (C, h, w) in [0, 255], uint8 or float -> (C, H, W) float32 in [0, 1], CPU."""
        net = self._require_net()
        lr_pixels = inputs.shape[-2] * inputs.shape[-1] // (self.scale // self.model_scale) ** 2
        tile = self.tile or (AUTO_TILE if lr_pixels > AUTO_TILE_ABOVE else None)
        return predict(net, inputs, self.model_scale, self.device, self.precision.enabled, tile,
                       self.precision.channels_last)

    # ------------------------------------------------------------------ the protocol

    def predict(self, lr: np.ndarray) -> torch.Tensor:
        """(h, w, 3) uint8 LR RGB -> the model's (C, H, W) output in [0, 1], its input made as training data is."""
        return self.run(model_input(lr, self.scale, self.layout, self.color))

    def score(self, lr: np.ndarray, hr: np.ndarray, protocol: str = "basicsr") -> Scored:
        """Reconstruct ``lr`` and score it against ``hr`` (its mod-cropped ground truth)."""
        if self.net is None:
            return bicubic_score(lr, hr, self.scale, protocol)
        pred = self.predict(lr)
        image = to_rgb_image(pred, upscale(lr, self.scale) if pred.shape[0] == 1 else None)
        return Scored(image, score(pred, hr, self.scale, protocol))

    # ------------------------------------------------------------------ photos

    def enlarge(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w, 3) RGB in [0, 255], uint8 or float -> (h * scale, w * scale, 3) float in [0, 255], unrounded.

        Nothing is rounded on the way: upsampled-layout models get the float bicubic
        enlargement, Y models the float Y. A Y model's output takes its colour (Cb, Cr)
        from the bicubic enlargement.
        """
        rgb = np.asarray(rgb, dtype=np.float64)
        if self.net is None:
            return np.clip(imresize(rgb, self.scale), 0, 255)
        if self.color == "rgb":
            source = imresize(rgb, self.scale) if self.layout == "upsampled" else rgb
            out = self.run(source.transpose(2, 0, 1)).numpy()  # (3, H, W) float32 in [0, 1]
            big = out.transpose(1, 2, 0) * np.float32(255.0)  # stays float32: the big image at half the memory
            return np.clip(big, 0, 255, out=big)
        # Y models. YCbCr is affine per pixel and bicubic is linear with weights summing to 1,
        # so enlarging the LR's YCbCr equals taking YCbCr of the enlarged RGB (to float
        # rounding), and only the planes that are used get enlarged.
        ycbcr = rgb_to_ycbcr(rgb)
        if self.layout == "upsampled":
            big = imresize(ycbcr, self.scale)  # its Y is the model's input
            big[..., 0] = self.run(big[None, ..., 0])[0].numpy() * 255.0
        else:
            y = self.run(ycbcr[None, ..., 0])[0].numpy()
            big = np.empty(y.shape + (3,))
            big[..., 0] = y * 255.0
            big[..., 1:] = imresize(ycbcr[..., 1:], self.scale)
        big = ycbcr_to_rgb(big)
        return np.clip(big, 0, 255, out=big)

    def enlarge_photo(self, photo: Photo, outscale: float | None = None, alpha_upsampler: str = "bicubic") -> Photo:
        """``sr.photo_enlarge.enlarge_photo`` with this model: alpha, grey and 16-bit kept; then MATLAB
        bicubic to ``outscale`` (None: the model's scale)."""
        if self.net is None:  # one bicubic straight to the final size, not two
            return enlarge_photo(photo, lambda rgb: rgb, 1, outscale or self.scale, alpha_upsampler)
        return enlarge_photo(photo, self.enlarge, self.scale, outscale, alpha_upsampler)


# ---------------------------------------------------------------------- scoring images


@dataclass(frozen=True)
class Evaluation:
    """One ground-truth image through the protocol: bicubic and (when given) a model."""

    path: Path
    hr: np.ndarray  # (H, W, 3) uint8, mod-cropped
    bicubic: Scored
    model: Scored | None  # None when only bicubic was asked for


def evaluate_image(path: str | Path, scale: int, upscaler: Upscaler | None = None, protocol: str = "basicsr",
                   jpeg: int | None = None) -> Evaluation:
    """Crop ``path`` to a multiple of ``scale``, degrade it (bicubic, then JPEG at quality
    ``jpeg`` if given), and score bicubic and ``upscaler`` on it under ``protocol``."""
    if upscaler is not None and upscaler.scale != scale:
        raise ValueError(f"the model is x{upscaler.scale}, asked to evaluate at x{scale}")
    hr = ground_truth(path, scale)
    lr = degrade(hr, scale, jpeg)
    model = upscaler.score(lr, hr, protocol) if upscaler is not None else None
    return Evaluation(Path(path), hr, bicubic_score(lr, hr, scale, protocol), model)


def mean_scores(scores: list[dict[str, float]]) -> dict[str, float]:
    """Per-image scores -> their means, key by key (the protocol averages per image)."""
    return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
