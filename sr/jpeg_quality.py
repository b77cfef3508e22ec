"""Estimate the quality a JPEG file was saved at, from its luminance quantisation table.

libjpeg (and so Pillow) builds its tables by scaling the standard ones of ITU T.81 Annex K
by the quality (``jpeg_quality_scaling``). Reading the table back and finding
the quality whose scaled table is closest gives the quality exactly for such files, and the
nearest IJG quality for encoders with their own tables (cameras, some editors): the same idea
as ImageMagick's ``identify -format %Q``. Written by hand because neither Pillow nor
torchvision exposes it; it is a dozen lines.

    jpeg_quality("photo.jpg")   # 75, or None for a PNG or an unreadable file
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image


@functools.cache
def ijg_luma_tables() -> np.ndarray:
    """(100, 64) int: row q - 1 is the luminance table libjpeg writes at quality q, in Pillow's order."""
    # At quality 50 libjpeg's scale factor is 100%, so Pillow writes Annex K's table itself:
    # taken from there rather than typed in, it is in the same order as what files give back.
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="JPEG", quality=50)
    with Image.open(buf) as img:
        base = np.array(img.quantization[0], dtype=np.int64)
    q = np.arange(1, 101)
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)[:, None]  # percent, as libjpeg
    return np.clip((base[None] * scale + 50) // 100, 1, 255)  # baseline tables: 8-bit entries


def jpeg_quality(path: str | Path) -> int | None:
    """The quality (1-100) a JPEG file was most likely saved at; None when the file is not a
    JPEG or cannot be read (reading it properly, and failing clearly, is the caller's job)."""
    try:
        with Image.open(path) as img:  # reads the headers only
            if img.format != "JPEG":
                return None
            tables = getattr(img, "quantization", None) or {}
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    luma = np.asarray(tables.get(0, ()), dtype=np.int64)
    if luma.size != 64:
        return None
    # Ties (near quality 100 many tables are all ones) go to the lowest such quality.
    return int(np.abs(ijg_luma_tables() - luma).sum(axis=1).argmin()) + 1


def _dct_matrix() -> np.ndarray:
    """The 8x8 orthonormal DCT-II: JPEG's forward transform is ``D @ block @ D.T``."""
    u, x = np.mgrid[0:8, 0:8]
    d = np.cos((2 * x + 1) * u * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


# The lowest frequencies (natural order, row-major): the ones that keep nonzero values even at
# low quality, so there is something to measure their step on.
_PROBED = np.array([0, 1, 8, 9, 2, 16])
FIT = 0.12  # mean distance from a multiple of the step, in steps: ~0.25 when the step is wrong


def pixel_quality(luma: np.ndarray, phase: tuple[int, int] = (0, 0)) -> int | None:
    """The JPEG quality a lossless image's pixels were decoded from, or None when they do not
    look like a decoded JPEG: (H, W) luma (JPEG's Y, 0-255), ``phase`` the block grid's offset.

    A decoded JPEG's 8x8 DCT coefficients sit near multiples of its quantisation steps (off by
    the rounding of the pixels). The lowest quality whose IJG steps every probed coefficient
    fits (``FIT``) is the answer: a coarser table leaves uniform residuals, and a finer one is
    a multiple only where it happens to divide. The classic quantisation-table estimate, kept
    to the steps where pixel rounding is small against the step (roughly quality 80 and below).
    """
    dy, dx = phase
    y = luma[dy:, dx:].astype(np.float64)
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    if h < 64 or w < 64:
        return None
    blocks = (y[:h, :w] - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    d = _dct_matrix()
    coef = (d @ blocks @ d.T).reshape(-1, 64)[:, _PROBED]  # (blocks, probed)
    tables = ijg_luma_tables()[:, _PROBED].astype(np.float64)  # (100, probed)
    for quality, steps in enumerate(tables, start=1):
        if quality < 100 and (tables[quality] == steps).all():
            continue  # the next quality has the same probed steps: answer the highest of such a run
        ratio = coef / steps
        nonzero = np.abs(ratio) >= 0.5  # zeros fit any step; only what survived quantisation tells
        if nonzero.sum(axis=0).min() < 50:
            continue  # too few surviving coefficients at this step to judge it
        residual = np.abs(ratio - np.round(ratio))
        if all(residual[nonzero[:, k], k].mean() < FIT for k in range(len(_PROBED))):
            return quality
    return None
