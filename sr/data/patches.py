"""Cutting aligned LR/HR patch pairs out of whole images."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def grid_patches(planes: np.ndarray, patch: int, stride: int) -> np.ndarray:
    """(C, H, W) -> (N, C, patch, patch): every patch whose top-left corner is on the
    stride grid and that lies wholly inside the image (N = 0 when the image is smaller)."""
    c, h, w = planes.shape
    if h < patch or w < patch:
        return np.empty((0, c, patch, patch), dtype=planes.dtype)
    windows = sliding_window_view(planes, (patch, patch), axis=(1, 2))[:, ::stride, ::stride]
    # (C, ny, nx, p, p) -> (ny * nx, C, p, p)
    return np.ascontiguousarray(windows.transpose(1, 2, 0, 3, 4).reshape(-1, c, patch, patch))


def patch_pairs(inputs: np.ndarray, hr: np.ndarray, scale: int, layout: str, patch: int, stride: int):
    """Matching (model input, HR) patches of one image.

    ``inputs`` is (C, h, w): the same size as ``hr`` for the "upsampled" layout, 1/scale of
    it for "lr-hr". ``patch`` and ``stride`` are in HR pixels; for "lr-hr" both must be
    multiples of ``scale`` so that every LR patch covers exactly its HR patch.
    """
    hr_patches = grid_patches(hr, patch, stride)
    if layout == "upsampled":
        return grid_patches(inputs, patch, stride), hr_patches
    return grid_patches(inputs, patch // scale, stride // scale), hr_patches


def dihedral(patches: np.ndarray) -> list[np.ndarray]:
    """The 8 flips and 90-degree rotations of (N, C, H, W) square patches."""
    out = []
    for k in range(4):
        rotated = np.rot90(patches, k, axes=(2, 3))
        out += [rotated, rotated[..., ::-1]]
    return [np.ascontiguousarray(p) for p in out]
