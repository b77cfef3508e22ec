"""Running a model on whole images and scoring it under the standard protocol.

Training-time evaluation and eval.py both go through ``predict`` and ``score``, so the
``eval psnr`` a run prints is the number eval.py gives for its checkpoint (up to float
rounding when the two run with other thread counts or memory formats).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from sr.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from sr.degradation import model_input, to_uint8, upscale
from sr.metrics import psnr, ssim
from sr.tiling import tiled_forward


def autocast(device: torch.device, enabled: bool, dtype: torch.dtype = torch.bfloat16):
    """bf16 (or fp16) autocast on CPU and CUDA; a no-op when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: np.ndarray,
    scale: int,
    device: torch.device,
    amp: bool = False,
    tile: int | None = None,
) -> torch.Tensor:
    """(C, h, w) uint8 model input -> (C, H, W) float output in [0, 1] on the CPU.

    ``scale`` is the model's own enlargement (1 for pre-upsampled models). With ``tile``,
    the image is processed in tiles of that many input pixels.
    """
    x = torch.from_numpy(np.ascontiguousarray(inputs)).to(device)[None].float().div_(255)
    with autocast(device, amp):
        out = tiled_forward(model, x, scale, tile) if tile else model(x)
    return out[0].float().clamp_(0, 1).cpu()


def super_resolve(
    model: nn.Module,
    lr: np.ndarray,
    scale: int,
    layout: str,
    color: str,
    device: torch.device,
    amp: bool = False,
    tile: int | None = None,
) -> torch.Tensor:
    """(h, w, 3) uint8 LR RGB -> the model's (C, h * scale, w * scale) output in [0, 1]."""
    inputs = model_input(lr, scale, layout, color)
    return predict(model, inputs, scale if layout == "lr-hr" else 1, device, amp, tile)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the 256 levels an 8-bit image file holds."""
    return torch.round(img * 255) / 255


def score(pred: torch.Tensor, hr: np.ndarray, scale: int) -> dict[str, float]:
    """PSNR/SSIM of a prediction against the mod-cropped RGB ground truth.

    ``pred`` is (1, H, W) Y or (3, H, W) RGB in [0, 1]; it is rounded to 8 bits first, as
    a saved result would be. Y is always scored (the standard); RGB predictions also get
    ``psnr_rgb``/``ssim_rgb``. The border of ``scale`` pixels is left out.
    """
    pred = quantize(pred)[None].double()
    out = {}
    if pred.shape[1] == 1:
        target = torch.from_numpy(rgb_to_y(hr) / 255.0)[None, None]
    else:
        target = torch.from_numpy(hr.transpose(2, 0, 1) / 255.0)[None]
        out["psnr_rgb"] = psnr(pred, target, scale, y_channel=False).item()
        out["ssim_rgb"] = ssim(pred, target, scale, y_channel=False).item()
    return {"psnr": psnr(pred, target, scale).item(), "ssim": ssim(pred, target, scale).item(), **out}


def bicubic_score(lr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[np.ndarray, dict[str, float]]:
    """Plain bicubic under the same protocol: (upscaled uint8 RGB, scores)."""
    up = upscale(lr, scale)
    return up, score(torch.from_numpy(up.transpose(2, 0, 1) / 255.0), hr, scale)


def to_rgb_image(pred: torch.Tensor, bicubic_rgb: np.ndarray) -> np.ndarray:
    """A model's output as an (H, W, 3) uint8 picture.

    RGB outputs are used as they are. A Y output becomes colour with the chroma (Cb, Cr)
    of the bicubic enlargement, the usual way Y-channel SR models are shown.
    """
    if pred.shape[0] == 3:
        return to_uint8(pred.numpy().transpose(1, 2, 0) * 255.0)
    ycbcr = rgb_to_ycbcr(bicubic_rgb)
    ycbcr[..., 0] = pred[0].numpy() * 255.0
    return to_uint8(ycbcr_to_rgb(ycbcr))
