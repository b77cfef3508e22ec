"""What an image file has been through, read from the file itself rather than from its name.

    history = read_history("photo.webp")   # History(container="webp", lossy=True, quality=None, blockiness=...)

* JPEG: the quality its luminance quantisation table was scaled from (``sr.jpeg_quality``), and
  the quality of an earlier, heavier JPEG save on a shifted grid when its pixels still show one
  (a downloaded photo cropped and saved again; ``sr.jpeg_quality.earlier_quality``).
* WebP: lossy when the file holds a ``VP8 `` bitstream (VP8L is lossless), read from the RIFF
  chunks; its quality from the bitstream's quantiser indices (``sr.webp_quality``).
* Anything else (PNG, TIFF, lossless WebP, BMP): the pixels are measured for compression damage.
  ``blockiness`` is how much larger the luma steps are across an 8- or 4-pixel grid than beside
  it (0: no grid; see ``blockiness`` for measured values). A JPEG resized after saving keeps its
  blocks on a smaller grid (4 px after halving), so both periods are looked at, at every phase.
  Where an 8-pixel grid shows, the JPEG quality the pixels were decoded from is read off their
  DCT coefficients at that grid (``sr.jpeg_quality.pixel_quality``), when they allow it.

Only the central ``MAX_SIDE`` x ``MAX_SIDE`` pixels are measured (``EARLIER_SIDE`` for the earlier
save, under a second on two cores), so the cost is bounded whatever the image size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sr.jpeg_quality import earlier_quality, jpeg_quality, pixel_quality
from sr.webp_quality import webp_quality

MAX_SIDE = 1024
EARLIER_SIDE = 384  # 18 000 blocks; the 120x80 validation images, with 150, already show an earlier save
PERIODS = (8, 4)
STEP_CLIP = 6.0  # luma levels
PIXEL_QUALITY_GRID = 0.02  # blockiness above which a lossless file's JPEG quality is looked for (clean LR: up to 0.035)


@dataclass(frozen=True)
class History:
    container: str  # "jpeg", "webp" or another Pillow format name in lower case ("png", "tiff", ...)
    lossy: bool  # the container itself is lossy (JPEG, lossy WebP)
    quality: int | None = None  # the estimated quality of the last lossy save (JPEG or WebP); None: not read
    blockiness: float | None = None  # measured for lossless containers only
    earlier: int | None = None  # a JPEG's earlier, heavier save on a shifted grid (its quality), when found

    @property
    def heaviest(self) -> int | None:
        """The lowest quality the file was saved at: the earlier save's when one was found."""
        return self.earlier if self.earlier is not None else self.quality

    def describe(self) -> str:
        """What was read, in a few words: "JPEG q38", "JPEG q80 over an earlier q40 on a shifted grid",
        "lossy WebP q40", "png, block grid 0.12 from a JPEG q40"."""
        if self.container == "jpeg":
            return f"JPEG q{self.quality}" + (f" over an earlier q{self.earlier} on a shifted grid" if self.earlier else "")
        if self.lossy:
            return "lossy WebP" + (f" q{self.quality}" if self.quality else "")
        grid = f", block grid {self.blockiness:.2f}" if self.blockiness else ""
        return self.container + grid + (f" from a JPEG q{self.quality}" if self.quality else "")


def webp_is_lossy(path: str | Path) -> bool | None:
    """True for a WebP whose image is a VP8 (lossy) bitstream, False for VP8L (lossless), None when
    ``path`` is not a readable WebP. Reads the RIFF chunk headers only."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                return None
            for _ in range(64):  # VP8X files put a few metadata chunks (ICCP, ANIM, ALPH) first
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if tag == b"VP8 ":
                    return True
                if tag == b"VP8L":
                    return False
                f.seek(size + (size & 1), 1)  # chunks are padded to an even size
    except OSError:
        return None
    return None


def blockiness(luma: np.ndarray, periods: tuple[int, ...] = PERIODS) -> float:
    """Block-grid strength of a 2-D luma image (0-255): how far the mean luma step at one position
    of an 8- or 4-pixel grid stands above the next largest position, relative to the mean step,
    over both axes and every phase. Steps are clipped at ``STEP_CLIP`` levels first, so that the
    photo's own edges do not outweigh the faint, everywhere-present block edges.

    On the 10 BSDS200-val LR images (x4): clean 0.008-0.035; JPEG q75 0.016-0.38 (median 0.15);
    WebP q75 0.035-0.24; re-saved JPEG 0.034-0.40."""
    y = luma.astype(np.float64)
    best = 0.0
    for steps in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):  # (rows, steps along a row)
        steps = np.minimum(steps, STEP_CLIP)
        for period in periods:
            n = steps.shape[1] // period * period
            if n < 4 * period:
                continue
            by_phase = np.sort(steps[:, :n].reshape(steps.shape[0], -1, period).mean(axis=(0, 1)))
            mean = by_phase[:-1].mean()
            if mean > 0:
                best = max(best, float((by_phase[-1] - by_phase[-2]) / mean))
    return best


def grid_phase(luma: np.ndarray, period: int = 8) -> tuple[int, int]:
    """(dy, dx): where the ``period``-pixel block grid of a 2-D luma image starts, found as the
    position whose steps (clipped as in ``blockiness``) are largest on average, per axis."""
    phase = []
    for steps in (np.abs(np.diff(luma.astype(np.float64), axis=0)).T, np.abs(np.diff(luma.astype(np.float64), axis=1))):
        steps = np.minimum(steps, STEP_CLIP)
        n = steps.shape[1] // period * period
        by_phase = steps[:, :n].reshape(steps.shape[0], -1, period).mean(axis=(0, 1)) if n else np.zeros(period)
        phase.append((int(by_phase.argmax()) + 1) % period)  # step i is between pixels i and i + 1
    return phase[0], phase[1]


def _central_luma(img: Image.Image, side: int = MAX_SIDE) -> np.ndarray:
    w, h = img.size
    left, top = max(0, (w - side) // 2), max(0, (h - side) // 2)
    crop = img.crop((left, top, min(w, left + side), min(h, top + side)))
    return np.asarray(crop.convert("L"))


def _earlier_jpeg(path: str | Path, quality: int) -> int | None:
    """The quality of an earlier JPEG save below ``quality`` that the decoded pixels show, or None.
    The crop starts on the file's own 8x8 grid, so the phase found is the earlier grid's offset."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            left, top = max(0, (w - EARLIER_SIDE) // 2) // 8 * 8, max(0, (h - EARLIER_SIDE) // 2) // 8 * 8
            rgb = np.asarray(img.crop((left, top, min(w, left + EARLIER_SIDE), min(h, top + EARLIER_SIDE))).convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    # JPEG's own luma (BT.601) unrounded: Pillow's "L" rounds, which blurs the steps being fitted.
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    found = earlier_quality(luma, below=quality)
    return found[0] if found else None


def read_history(path: str | Path) -> History:
    """The file's container and, for lossless ones, the compression damage its pixels show."""
    quality = jpeg_quality(path)
    if quality is not None:
        return History("jpeg", True, quality=quality, earlier=_earlier_jpeg(path, quality))
    lossy_webp = webp_is_lossy(path)
    if lossy_webp:
        return History("webp", True, quality=webp_quality(path))
    try:
        with Image.open(path) as img:
            container = (img.format or Path(path).suffix.lstrip(".")).lower()
            luma = _central_luma(img)
    except (OSError, ValueError, Image.DecompressionBombError):
        # Unreadable: nothing to measure. Reading it for real says why, in its own words.
        return History("unreadable", False, blockiness=0.0)
    grid = blockiness(luma)
    decoded_from = pixel_quality(luma, grid_phase(luma)) if grid >= PIXEL_QUALITY_GRID else None
    return History(container, False, quality=decoded_from, blockiness=grid)
