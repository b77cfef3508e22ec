"""The evaluation protocol: degrade a ground truth, run a model on the whole image, score it.

Training-time evaluation and eval.py (through ``sr.upscaler.Upscaler.score``) both go through
``predict`` and ``score``, so the ``eval psnr`` a run prints is the number eval.py gives
for its checkpoint (up to float rounding when the two run with other thread counts or
memory formats).

Two protocols differ only in how Y is taken from RGB (``PROTOCOLS``):
- ``basicsr`` (the default): Y of BT.601 in float64, unrounded, as BasicSR computes it;
- ``matlab``: Y rounded to integers, as MATLAB's ``rgb2ycbcr`` returns it for uint8 images
  (both the prediction's Y and the ground truth's). Bicubic Set5 x2/x3/x4 gives
  33.68 / 30.40 / 28.43 dB under ``basicsr`` and 33.65 / 30.39 / 28.42 under ``matlab``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from sr.color import rgb_to_y, rgb_to_y_tensor, rgb_to_ycbcr, ycbcr_to_rgb
from sr.data.degradation import downscale, mod_crop, to_uint8, upscale
from sr.errors import UserError
from sr.imresize import imresize
from sr.data.images import load_rgb
from sr.metrics import psnr, smallest_scored_side, ssim
from sr.precision import Precision
from sr.data.field import field_degrade
from sr.data.realistic import jpeg_degrade
from sr.tiling import tiled_forward

PROTOCOLS = ("basicsr", "matlab")


class Scored(NamedTuple):
    """A reconstruction as it would be saved, with its scores."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    scores: dict[str, float]  # psnr, ssim (on Y); psnr_rgb, ssim_rgb for colour models


@torch.inference_mode()
def predict(
    model: nn.Module,
    inputs: np.ndarray,
    input_scale: int,
    device: torch.device,
    precision: Precision | None = None,
    tile: int | None = None,
) -> torch.Tensor:
    """The protocol's forward pass (training's evaluation, eval.py's scores): (C, h, w) model input,
    uint8 or float in [0, 255] -> (C, H, W) float32 output in [0, 1] on the CPU. (The enlarger
    runs the network's parts tile by tile itself: ``sr.enlarge``.)

    ``input_scale`` is the model's own enlargement (1 for pre-upsampled models). ``precision``
    (default: fp32, NCHW) says whether the model runs under autocast and on an NHWC input.
    With ``tile``, the image is processed in tiles of that many input pixels. Float input
    is used as it is (not rounded to 8 bits).
    """
    precision = precision or Precision(device.type, None, False)
    # One conversion to float32 on the device; never in place, as a float32 array would be shared.
    x = torch.from_numpy(np.ascontiguousarray(inputs))[None].to(device=device, dtype=torch.float32) / 255.0
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with precision.autocast():
        out = tiled_forward(model, x, input_scale, tile) if tile else model(x)
    return out[0].float().clamp_(0, 1).cpu()


def ground_truth(path: str | Path, scale: int) -> np.ndarray:
    """An image file as protocol ground truth: (H, W, 3) uint8 RGB cropped to a multiple of ``scale``.

    Raises UserError when it is too small to score (the SSIM window after the border crop).
    """
    image = load_rgb(path)
    hr = mod_crop(image, scale)
    if min(hr.shape[:2]) < smallest_scored_side(scale):  # the file's size: its crop can be 0x0
        raise UserError(f"{path}: {image.shape[1]}x{image.shape[0]} is too small to evaluate at x{scale} "
                        f"(needs at least {smallest_scored_side(scale)} px a side; use --upscale to just enlarge it)")
    return hr


def degrade(hr: np.ndarray, scale: int, jpeg: int | str | None = None) -> np.ndarray:
    """Mod-cropped HR -> the LR a model is given: MATLAB bicubic, 8-bit; then, with ``jpeg``,
    a Pillow JPEG save at that quality (Pillow's other defaults) and decode. A string is a field
    degradation instead (``sr.data.field``: "webp:75", "resaved", ...), made from the HR."""
    if isinstance(jpeg, str):
        return field_degrade(hr, scale, jpeg)
    lr = downscale(hr, scale)
    return lr if jpeg is None else jpeg_degrade(lr, jpeg)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the 256 levels an 8-bit image file holds."""
    return torch.round(img * 255) / 255


def score(pred: torch.Tensor, hr: np.ndarray, scale: int, protocol: str = "basicsr") -> dict[str, float]:
    """PSNR/SSIM of a prediction against the mod-cropped RGB ground truth.

    ``pred`` is (1, H, W) Y or (3, H, W) RGB in [0, 1]; it is rounded to 8 bits first, as
    a saved result would be. Y is always scored (the standard), taken from RGB as ``protocol``
    says (see the module docstring); RGB predictions also get ``psnr_rgb``/``ssim_rgb``.
    The border of ``scale`` pixels is left out.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    integer = protocol == "matlab"
    pred = quantize(pred)[None].double()
    target = torch.from_numpy(hr.transpose(2, 0, 1) / 255.0)[None]
    out = {}
    if pred.shape[1] == 1:
        pred_y = pred  # a Y model's output, already whole 1/255 steps after quantize
    else:
        out["psnr_rgb"] = psnr(pred, target, scale, y_channel=False).item()
        out["ssim_rgb"] = ssim(pred, target, scale, y_channel=False).item()
        pred_y = rgb_to_y_tensor(pred, integer)
    target_y = rgb_to_y_tensor(target, integer)
    return {"psnr": psnr(pred_y, target_y, scale).item(), "ssim": ssim(pred_y, target_y, scale).item(), **out}


def bicubic_score(lr: np.ndarray, hr: np.ndarray, scale: int, protocol: str = "basicsr") -> Scored:
    """Plain bicubic under the same protocol."""
    up = upscale(lr, scale)
    return Scored(up, score(torch.from_numpy(up.transpose(2, 0, 1) / 255.0), hr, scale, protocol))


def toward_bicubic(pred: torch.Tensor, lr: np.ndarray, scale: int, detail: float) -> torch.Tensor:
    """A model's (C, H, W) output in [0, 1] pulled toward the unrounded bicubic enlargement of ``lr``
    in the model's colour (Y for C = 1): bicubic + detail x (pred - bicubic) (sr.weights.Anchor.detail)."""
    if detail == 1:
        return pred
    big = imresize(lr.astype(np.float64), float(scale))
    bicubic = torch.from_numpy((rgb_to_y(big)[None] if pred.shape[0] == 1 else big.transpose(2, 0, 1)) / 255.0)
    return (bicubic + detail * (pred.double() - bicubic)).clamp(0, 1).float()


def to_rgb_image(pred: torch.Tensor, bicubic_rgb: np.ndarray | None) -> np.ndarray:
    """A model's output as an (H, W, 3) uint8 picture.

    RGB outputs are used as they are. A Y output becomes colour with the chroma (Cb, Cr)
    of the bicubic enlargement, the usual way Y-channel SR models are shown; pass it unrounded
    and unclipped (float), as the enlarger uses it, or saturated edges come out levels apart.
    """
    if pred.shape[0] == 3:
        return to_uint8(pred.numpy().transpose(1, 2, 0) * 255.0)
    ycbcr = rgb_to_ycbcr(bicubic_rgb)
    ycbcr[..., 0] = pred[0].numpy() * 255.0
    return to_uint8(ycbcr_to_rgb(ycbcr))
