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
