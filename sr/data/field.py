"""The field benchmark's degradations: what photo files really carry, made from a clean HR image.

    lr = field_degrade(hr, 4, "webp:75")       # (H/4, W/4, 3) uint8, as a user's file decodes
    path = save_field_lr(lr, "webp:75", folder / "stem")   # in the container that kind comes in

Every kind starts from the evaluation protocol's LR (MATLAB bicubic, rounded to 8 bits), except
``resized``, which compresses at an intermediate size. Exactly:

* ``clean``     the protocol's LR.
* ``jpeg:Q``    the LR saved as JPEG at quality Q (Pillow, 4:2:0 chroma), decoded.
* ``webp:Q``    the LR saved as lossy WebP at quality Q (Pillow's libwebp, method 4), decoded.
* ``resized``   the HR bicubic-downscaled by 2 and rounded, saved as JPEG q70 and decoded, then
                downscaled (bicubic) to the LR size and rounded: a JPEG shrunk after it was saved,
                its 8x8 blocks halved and off the grid. Kept as PNG (a screenshot of it).
* ``resaved``   the LR shifted by one pixel right and down (reflected edge), saved as JPEG q90,
                decoded and shifted back, then saved as JPEG q70: a photo cropped and re-saved,
                two block grids one pixel apart.
* ``noisy``     Gaussian noise of std 5 (8-bit levels, the same seed for every image, per channel)
                added to the LR, rounded, then JPEG q85: a noisy phone JPEG.
* ``A+B``       two lossy saves, each ``jpeg:Q`` or ``webp:Q``: the LR saved as A with its grid moved
                ``RESAVE_SHIFT`` px down and right, decoded, then saved as B on the image's own grid:
                a downloaded photo cropped and saved again (``jpeg:50+webp:70``, ``jpeg:40+jpeg:80``).

The heavy kinds (``HEAVY_KINDS``) are what stock sites and messengers serve: quality 30-40, and
a low-quality JPEG saved again, in the other format or on a shifted grid.

Deterministic: the same image and kind give the same bytes on any machine with the same libjpeg
and libwebp (Pillow bundles both).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from sr.data.degradation import downscale, to_uint8
from sr.imresize import imresize

FIXED_KINDS = ("clean", "resized", "resaved", "noisy")
FIELD_KINDS = ("clean", "jpeg:75", "webp:75", "resized", "resaved", "noisy")  # the mild kinds
HEAVY_KINDS = ("jpeg:30", "jpeg:40", "webp:30", "webp:40", "jpeg:50+webp:70", "jpeg:40+jpeg:80")
RESAVE_SHIFT = 4  # px the first save's grid of an A+B kind sits from the second's: half an 8x8 JPEG block
NOISE_SEED = 20  # the noise of ``noisy``: one seed for every image, so runs compare alike


def _save(part: str) -> tuple[str, int] | None:
    """``"jpeg:Q"`` or ``"webp:Q"`` -> (codec, Q); None for anything else."""
    codec, _, quality = part.partition(":")
    if codec in ("jpeg", "webp") and quality.isdigit() and 1 <= int(quality) <= 100:
        return codec, int(quality)
    return None


def check_kind(kind: str) -> str:
    """``kind`` if it names a field degradation; ValueError saying what does otherwise."""
    parts = kind.split("+")
    if kind in FIXED_KINDS or (len(parts) <= 2 and all(_save(p) for p in parts)):
        return kind
    raise ValueError(f"unknown degradation {kind!r}: one of {', '.join(FIXED_KINDS)}, jpeg:Q or webp:Q (Q 1-100), "
                     "or two saves as jpeg:Q+webp:Q")


def encode(rgb: np.ndarray, codec: str, quality: int) -> bytes:
    """(H, W, 3) uint8 -> the bytes of a lossy JPEG or WebP file (Pillow's defaults otherwise)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG" if codec == "jpeg" else "WEBP", quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"))


def compress(rgb: np.ndarray, codec: str, quality: int) -> np.ndarray:
    """What a JPEG or WebP save at ``quality`` and a decode leave of an (H, W, 3) uint8 image."""
    return decode(encode(rgb, codec, quality))


def shifted_compress(rgb: np.ndarray, codec: str, quality: int, dy: int, dx: int) -> np.ndarray:
    """``compress`` with the codec's block grid moved ``dy``, ``dx`` pixels (reflected edge, cut off after)."""
    if not dy and not dx:
        return compress(rgb, codec, quality)
    padded = np.pad(rgb, ((dy, 0), (dx, 0), (0, 0)), mode="reflect")
    return compress(padded, codec, quality)[dy:, dx:]


def _last_save(hr: np.ndarray, scale: int, kind: str) -> tuple[np.ndarray, str | None, int]:
    """(pixels, codec, quality) of the last save a file of ``kind`` went through: the file is
    ``encode(pixels, codec, quality)``; codec None: the pixels are the file's (a PNG)."""
    kind = check_kind(kind)
    if kind == "resized":
        half = to_uint8(imresize(hr, 0.5))
        h, w = hr.shape[0] // scale, hr.shape[1] // scale
        return to_uint8(imresize(compress(half, "jpeg", 70), size=(h, w))), None, 0
    lr = downscale(hr, scale)
    if kind == "clean":
        return lr, None, 0
    if kind == "resaved":
        return shifted_compress(lr, "jpeg", 90, 1, 1), "jpeg", 70
    if kind == "noisy":
        noise = np.random.default_rng(NOISE_SEED).normal(0.0, 5.0, lr.shape)
        return to_uint8(lr + noise), "jpeg", 85
    *first, last = [_save(p) for p in kind.split("+")]
    for codec, quality in first:
        lr = shifted_compress(lr, codec, quality, RESAVE_SHIFT, RESAVE_SHIFT)
    return lr, *last


def field_degrade(hr: np.ndarray, scale: int, kind: str) -> np.ndarray:
    """Mod-cropped (H, W, 3) uint8 HR -> the (H/scale, W/scale, 3) uint8 LR of ``kind`` (see the module docstring)."""
    pixels, codec, quality = _last_save(hr, scale, kind)
    return pixels if codec is None else compress(pixels, codec, quality)


def field_suffix(kind: str) -> str:
    """The file extension a user's file of this kind has: .jpg for JPEG kinds, .webp for WebP, .png otherwise."""
    last = check_kind(kind).split("+")[-1]
    if last.startswith("webp"):
        return ".webp"
    return ".jpg" if last.startswith("jpeg") or last in ("resaved", "noisy") else ".png"


def save_field_lr(hr: np.ndarray, scale: int, kind: str, stem: Path) -> Path:
    """Write the LR of ``kind`` as a user would have it: the last lossy save's own bytes for JPEG and
    WebP kinds (its quantisation tables and chunks are in the file), PNG otherwise. Returns the path;
    it decodes to ``field_degrade(hr, scale, kind)``."""
    pixels, codec, quality = _last_save(hr, scale, kind)
    path = Path(str(stem) + field_suffix(kind))
    if codec is None:
        Image.fromarray(pixels).save(path)
    else:
        path.write_bytes(encode(pixels, codec, quality))
    return path
