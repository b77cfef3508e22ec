"""The degradation of the evaluation protocol, shared by data preparation and evaluation.

HR is cropped (never resampled) to a multiple of the scale; LR is MATLAB bicubic and
rounded to 8 bits as if saved; pre-upsampling models get that LR bicubic-upsampled back,
rounded again. Everything here works on uint8 (H, W, 3) RGB arrays.
"""

from __future__ import annotations

import numpy as np

from sr.color import rgb_to_y
from sr.imresize import imresize


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a float image in [0, 255] to uint8, as saving it would."""
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Drop the last rows and columns so that height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """Mod-cropped HR -> LR, bicubic with antialiasing, 8-bit."""
    return to_uint8(imresize(hr, 1.0 / scale))


def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """LR -> bicubic upscaled by ``scale``, 8-bit."""
    return to_uint8(imresize(lr, float(scale)))


def to_planes(rgb: np.ndarray, color: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (C, H, W) uint8 planes a model reads: Y (C = 1) or RGB."""
    if color == "y":
        return to_uint8(rgb_to_y(rgb))[None]
    if color == "rgb":
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    raise ValueError(f"color must be 'y' or 'rgb', got {color!r}")


def model_input(lr: np.ndarray, scale: int, layout: str, color: str) -> np.ndarray:
    """LR RGB -> what a model of ``layout`` and ``color`` is fed, (C, h, w) uint8."""
    if layout == "upsampled":
        lr = upscale(lr, scale)
    elif layout != "lr-hr":
        raise ValueError(f"layout must be 'upsampled' or 'lr-hr', got {layout!r}")
    return to_planes(lr, color)
