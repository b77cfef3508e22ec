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


def _probed_coefficients(luma: np.ndarray, phase: tuple[int, int], min_side: int) -> np.ndarray | None:
    """(blocks, probed) DCT coefficients of the 8x8 blocks of a (H, W) luma image whose grid starts
    ``phase`` = (dy, dx) px in, or None when the blocks cover less than ``min_side`` a side."""
    dy, dx = phase
    y = np.asarray(luma, dtype=np.float64)[dy:, dx:]
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    if h < min_side or w < min_side:
        return None
    blocks = (y[:h, :w] - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    d = _dct_matrix()
    return (d @ blocks @ d.T).reshape(-1, 64)[:, _PROBED]


def _highest_of_equal_steps(tables: np.ndarray) -> np.ndarray:
    """(100,) bool: the qualities that answer for their run of equal probed steps, the highest of
    each (near quality 100, and for the coarse probed steps, several qualities share a table)."""
    answers = np.ones(len(tables), dtype=bool)
    answers[:-1] = ~(tables[1:] == tables[:-1]).all(axis=1)
    return answers


def pixel_quality(luma: np.ndarray, phase: tuple[int, int] = (0, 0)) -> int | None:
    """The JPEG quality a lossless image's pixels were decoded from, or None when they do not
    look like a decoded JPEG: (H, W) luma (JPEG's Y, 0-255), ``phase`` the block grid's offset.

    A decoded JPEG's 8x8 DCT coefficients sit near multiples of its quantisation steps (off by
    the rounding of the pixels). The lowest quality whose IJG steps every probed coefficient
    fits (``FIT``) is the answer: a coarser table leaves uniform residuals, and a finer one is
    a multiple only where it happens to divide. The classic quantisation-table estimate, kept
    to the steps where pixel rounding is small against the step (roughly quality 80 and below).
    """
    coef = _probed_coefficients(luma, phase, 64)
    if coef is None:
        return None
    tables = ijg_luma_tables()[:, _PROBED].astype(np.float64)  # (100, probed)
    answers = _highest_of_equal_steps(tables)
    for quality, steps in enumerate(tables, start=1):
        if not answers[quality - 1]:
            continue
        ratio = coef / steps
        nonzero = np.abs(ratio) >= 0.5  # zeros fit any step; only what survived quantisation tells
        if nonzero.sum(axis=0).min() < 50:
            continue  # too few surviving coefficients at this step to judge it
        residual = np.abs(ratio - np.round(ratio))
        if all(residual[nonzero[:, k], k].mean() < FIT for k in range(len(_PROBED))):
            return quality
    return None


# An earlier JPEG save on a grid shifted from the last one's: its coefficients at that grid still
# sit near multiples of its (coarser) steps, the last save's rounding on top. Mean distance, in
# steps, at the best phase and quality on the 10 BSDS200-val LR images (x4): 0.114-0.158 for a
# q40 JPEG saved again as JPEG q80 or a q60 one as q90, on a grid 4 px off; 0.208 and up for every
# single save (JPEG q30-75, WebP, noisy) and for a JPEG saved again as WebP, whose own rounding
# wipes it out. EARLIER_FIT is between the two. The trace is found where the last save's steps
# are about half the earlier one's or finer (q40 under q80); closer qualities blur it away.
EARLIER_FIT = 0.18
EARLIER_MIN_COEFFICIENTS = 100  # surviving coefficients (over the probed ones) a quality is judged on
EARLIEST = 10  # the lowest earlier quality looked for


def earlier_quality(luma: np.ndarray, below: int = 100) -> tuple[int, tuple[int, int]] | None:
    """(quality, (dy, dx)) of an earlier JPEG save, of quality under ``below``, whose 8x8 grid sits
    (dy, dx) px from the image's own, found in the pixels of a (H, W) luma image (0-255), or None
    when there is no such trace. Phases within a pixel of the image's own grid are not looked at:
    there the last save's blocks answer, and a re-save one pixel off (a crop) is a mild case
    anyway. An earlier save on the same grid as the last is not found either."""
    tables = ijg_luma_tables()[:, _PROBED].astype(np.float64)  # (100, probed)
    tables[below - 1:] = np.inf  # ratios of 0: never counted, so never a fit
    tables[:EARLIEST - 1] = np.inf  # below it, the DC alone fits a step by chance
    luma = np.asarray(luma, dtype=np.float64)
    answers = _highest_of_equal_steps(tables)  # of qualities whose probed steps are the same, the highest
    best = None
    for dy in range(8):
        for dx in range(8):
            if min(dy, 8 - dy) <= 1 and min(dx, 8 - dx) <= 1:
                continue
            coef = _probed_coefficients(luma, (dy, dx), 16)
            if coef is None:
                return None
            ratio = coef[:, :, None] / tables.T[None]  # (blocks, probed, quality)
            nonzero = np.abs(ratio) >= 0.5
            counted = nonzero.sum(axis=(0, 1))
            fit = (np.abs(ratio - np.round(ratio)) * nonzero).sum(axis=(0, 1)) / np.maximum(counted, 1)
            fit[(counted < EARLIER_MIN_COEFFICIENTS) | ~answers] = np.inf
            quality = int(fit.argmin()) + 1
            if fit[quality - 1] < EARLIER_FIT and (best is None or fit[quality - 1] < best[0]):
                best = (fit[quality - 1], quality, (dy, dx))
    return None if best is None else (best[1], best[2])
