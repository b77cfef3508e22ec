"""BT.601 colour conversions as MATLAB's ``rgb2ycbcr`` / ``ycbcr2rgb`` define them.

Values are in [0, 255] on both sides (float), studio swing: Y in [16, 235]. With
``integer=True`` the Y functions return what MATLAB's ``rgb2ycbcr`` gives for a uint8
image: the same Y rounded to whole numbers, halves away from zero (MATLAB's uint8 cast).
BasicSR and most papers' Python code keep Y unrounded; MATLAB-scored papers round it.
"""

from __future__ import annotations

import numpy as np
import torch

# Rows give Y, Cb, Cr from R, G, B in [0, 1]; the offsets are in [0, 255] units.
_RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
_OFFSET = np.array([16.0, 128.0, 128.0])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 255] -> (..., 3) YCbCr in [0, 255], float64, unrounded."""
    return np.asarray(rgb, dtype=np.float64) / 255.0 @ _RGB_TO_YCBCR.T + _OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """(..., 3) YCbCr in [0, 255] -> (..., 3) RGB in [0, 255], float64, unclipped."""
    return (np.asarray(ycbcr, dtype=np.float64) - _OFFSET) @ _YCBCR_TO_RGB.T * 255.0


def rgb_to_y(rgb: np.ndarray, integer: bool = False) -> np.ndarray:
    """(..., 3) RGB in [0, 255] -> (...) Y in [16, 235], float64; unrounded unless ``integer``."""
    y = np.asarray(rgb, dtype=np.float64) / 255.0 @ _RGB_TO_YCBCR[0] + _OFFSET[0]
    return np.floor(y + 0.5) if integer else y  # Y > 0: floor(y + 0.5) rounds halves up, as MATLAB


def rgb_to_y_tensor(rgb: torch.Tensor, integer: bool = False) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) Y in [0, 1], in the input's dtype.

    ``integer``: Y rounded to a whole number of 1/255 steps, as MATLAB's ``rgb2ycbcr`` on uint8.
    """
    weights = torch.as_tensor(_RGB_TO_YCBCR[0] / 255.0, dtype=rgb.dtype, device=rgb.device)
    y = (rgb * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True) + _OFFSET[0] / 255.0
    return torch.floor(y * 255.0 + 0.5) / 255.0 if integer else y
