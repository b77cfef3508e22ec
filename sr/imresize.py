"""MATLAB-compatible bicubic ``imresize``.

Written by hand because the published SR numbers depend on MATLAB's exact kernel:
cubic with a = -0.5, the kernel widened by 1/scale when shrinking (antialiasing), and
mirrored borders. PIL's bicubic renormalises at the border instead of mirroring, and
``torch.nn.functional.interpolate`` uses a = -0.75; both move bicubic Set5 PSNR by
hundredths of a dB, which is more than the protocol allows.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=32)
def _contributions(in_len: int, out_len: int, scale: float, antialias: bool):
    """Per output pixel: the input indices it reads (0-based, mirrored) and their weights.

    Returns ``indices`` and ``weights``, both shaped (out_len, taps), read-only (cached: a
    tiled resize asks for the same axis once per tile).
    """
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    # Output pixel x (1-based, as in MATLAB) sits at input coordinate u.
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if shrink else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # Taps whose weight is zero for every output pixel (two of the six when enlarging) are
    # dropped, as MATLAB drops them: adding 0 * value changes no sum, and it saves a third.
    used = np.any(weights != 0, axis=0)
    indices, weights = indices[:, used], weights[:, used]
    # MATLAB pads symmetrically (the edge pixel repeated, then mirrored inwards).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    indices.flags.writeable = weights.flags.writeable = False
    return indices, weights


def _resize_axis0(img: np.ndarray, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    indices, weights = _contributions(img.shape[0], out_len, scale, antialias)
    out = np.zeros((out_len,) + img.shape[1:], dtype=np.float64)
    extra = (slice(None),) + (None,) * (img.ndim - 1)
    # One gather per tap keeps memory at the size of the output (no dense matrix).
    for tap in range(indices.shape[1]):
        out += weights[:, tap][extra] * img[indices[:, tap]]
    return out


def imresize(
    img: np.ndarray, scale: float | None = None, antialias: bool = True, *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) image like MATLAB's ``imresize(img, scale)`` or
    ``imresize(img, [height width])`` (give ``size=(height, width)`` instead of ``scale``).

    The output is float64 with the input's value range, unrounded. With ``scale`` the output
    is ``ceil(H * scale) x ceil(W * scale)``; with ``size`` it is exactly that, each axis
    resized by its own factor (out / in), as MATLAB does, and an axis whose length stays is
    left as it is. Resizing is separable and linear, so doing the rows and the columns in
    float64 gives MATLAB's result whatever the order.
    """
    h, w = img.shape[:2]
    if (scale is None) == (size is None):
        raise ValueError("give either scale or size")
    if size is None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        (out_h, scale_h), (out_w, scale_w) = (math.ceil(h * scale), scale), (math.ceil(w * scale), scale)
    else:
        if min(size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        (out_h, scale_h), (out_w, scale_w) = (size[0], size[0] / h), (size[1], size[1] / w)
    out = np.asarray(img, dtype=np.float64)
    if out.ndim == 3:
        # Plane by plane: gathering rows of interleaved (H, W, C) pixels across the swapped
        # axes is several times slower than the same work on C separate planes.
        planes = [imresize(out[..., c], scale, antialias, size=size) for c in range(out.shape[2])]
        return np.stack(planes, axis=-1)
    if size is None or out_h != h:
        out = _resize_axis0(out, out_h, scale_h, antialias)
    if size is None or out_w != w:
        out = _resize_axis0(out.swapaxes(0, 1), out_w, scale_w, antialias).swapaxes(0, 1)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------- one piece of a resize


def source_span(in_len: int, out_len: int, scale: float, start: int, stop: int, antialias: bool = True) -> tuple[int, int]:
    """The input pixels [lo, hi) that output pixels [start, stop) of resizing one axis from
    ``in_len`` to ``out_len`` (by ``scale``, as ``imresize`` passes it) read. MATLAB's bicubic
    is local and separable, so a piece of the output needs only this piece of the input."""
    indices, _ = _contributions(in_len, out_len, scale, antialias)
    part = indices[start:stop]
    return int(part.min()), int(part.max()) + 1


def resize_span(img: np.ndarray, axis: int, in_len: int, out_len: int, scale: float, start: int, stop: int,
                offset: int, antialias: bool = True) -> np.ndarray:
    """Output pixels [start, stop) along ``axis`` of resizing that axis from ``in_len`` to
    ``out_len``, from ``img`` holding input pixels [offset, offset + img.shape[axis]) of it
    (at least ``source_span``). Float64, the same sums in the same order as ``imresize``, so
    pieces put side by side are bit for bit its result."""
    indices, weights = _contributions(in_len, out_len, scale, antialias)
    indices, weights = indices[start:stop] - offset, weights[start:stop]
    if indices.size and (indices.min() < 0 or indices.max() >= img.shape[axis]):
        raise ValueError(f"rows {offset}..{offset + img.shape[axis]} do not hold what outputs {start}..{stop} read")
    shape = [1] * img.ndim
    shape[axis] = stop - start
    out_shape = list(img.shape)
    out_shape[axis] = stop - start
    out = np.zeros(out_shape, dtype=np.float64)
    for tap in range(indices.shape[1]):
        out += weights[:, tap].reshape(shape) * np.take(img, indices[:, tap], axis=axis)
    return out
