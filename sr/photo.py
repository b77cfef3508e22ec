"""Reading a user's photo for the enlarger, keeping what the input is.

``sr.data.images.load_rgb`` flattens every file to 8-bit RGB, which is right for training and
scoring. Enlarging a user's photo must give back the same kind of file, so ``read_photo`` keeps
alpha as alpha, grey as grey, 16-bit as 16-bit (the values, not an 8-bit copy), the ICC profile
and EXIF, and turns the picture upright (EXIF orientation applied, the tag then removed).
``sr.photo_write`` writes the enlarged result back in kind.

    photo = read_photo("in.png", compact=True)         # Photo: planes in [0, 255]
    print(*photo.notes, sep="\n")                      # what could not be kept on reading

What Pillow (13) cannot decode, and what this module does instead (each case adds a note):
16-bit-per-channel colour (48/64-bit PNG or TIFF) and 16-bit grey+alpha PNG come out of Pillow
at 8 bits per channel (it keeps the high byte; there is no 16-bit RGB mode). We read those as
8-bit (``bits=8``) and say so. Only 16-bit grey (``I;16``) is 16-bit end to end.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sr.errors import UserError

_GREY_16 = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class Photo:
    """One image, in the form the enlarger works on.

    ``rgb``: (H, W, 3) float64 in [0, 255], unrounded (16-bit input is v / 65535 * 255, not an
    8-bit copy); grey photos have three equal channels so an RGB model can take them.
    ``alpha``: (H, W) float64 in [0, 255], or None. (``read_photo(compact=True)`` gives the
    same values as uint8 or float32, grey as one plane seen three times.) ``grey``: write one channel back.
    ``bits``: 8 or 16, the precision to write back where the format allows.
    ``notes``: what could not be kept on reading, one line each, for the caller to print.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grey: bool = False
    bits: int = 8
    icc: bytes | None = None
    exif: bytes | None = None
    source_format: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def _rawmode(img: Image.Image) -> str:
    """How the file stores its pixels (e.g. 'RGB;16B'), read from the decoder tile before
    ``load()`` drops it; '' when Pillow does not say."""
    if not img.tile:
        return ""
    args = img.tile[0].args if hasattr(img.tile[0], "args") else img.tile[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _stored_bits(img: Image.Image, rawmode: str) -> int:
    """Bits per sample in the file (which may be more than Pillow decoded)."""
    if ";16" in rawmode:
        return 16
    tags = getattr(img, "tag_v2", None)  # TIFF: BitsPerSample
    if tags is not None:
        bits = tags.get(258, 8)
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 8


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None, list[str]]:
    """CMYK -> RGB through the file's profile to sRGB when there is one (the CMYK profile
    cannot travel with RGB pixels), else Pillow's naive formula."""
    if icc:
        try:
            from PIL import ImageCms

            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            rgb = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
            return rgb, srgb.tobytes(), []
        except Exception:  # no littlecms, or a profile it rejects: fall through
            pass
    note = "CMYK converted to RGB without colour management; colours may shift"
    return img.convert("RGB"), None, [note]


def _planes(img: Image.Image, rawmode: str, notes: list[str], compact: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None, bool, int]:
    """Any Pillow mode -> (grey-or-colour values (H, W) or (H, W, 3), alpha or None, grey, bits),
    values in [0, 255]: float64, or with ``compact`` uint8 for 8-bit planes and float32 otherwise."""
    mode = img.mode
    if mode in _GREY_16:
        # A 16-bit file: always v / 65535, even when a dark image never goes above 255.
        if compact:
            return np.asarray(img).astype(np.float32) * np.float32(255.0 / 65535.0), None, True, 16
        return np.asarray(img, dtype=np.float64) / 65535.0 * 255.0, None, True, 16
    if mode == "I":
        values = np.asarray(img, dtype=np.float32 if compact else np.float64)  # float32 holds 0..65535 exactly
        low, high = values.min(initial=0), values.max(initial=0)
        if low < 0 or high > 65535:
            raise UserError(f"32-bit integer image with values {low:.0f}..{high:.0f} (only 0..65535 is supported)")
        if high <= 255:  # 8-bit data held in a 32-bit mode (as sr.data.images.load_rgb reads it)
            return values, None, True, 8
        return values * values.dtype.type(255.0 / 65535.0), None, True, 16
    if mode == "F":
        # Float grey: [0, 1] when it fits there, else [0, 255] (as sr.data.images.load_rgb). Kept at
        # 16 bits on the way out: a float image has more than 8 bits of precision to lose.
        values = np.asarray(img, dtype=np.float32 if compact else np.float64)
        peak = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        return np.clip(values * values.dtype.type(255.0 / peak), 0, 255), None, True, 16

    if mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA"):
        # Palette images come back as RGB(A): the enlarged image has more colours than a palette holds.
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode in ("L", "RGB") and "transparency" in img.info:  # a tRNS colour key
        img = img.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("La", "RGBa"):  # premultiplied -> straight
        img = img.convert(mode[:-1] + "A")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            img = img.convert("RGBA" if "A" in mode else "RGB")
        except ValueError:
            raise UserError(f"image mode {mode} is not supported") from None

    stored = 16 if ";16" in rawmode else 8
    # Pillow decodes 16-bit grey+alpha PNG as RGBA (three equal channels): it is grey.
    grey = img.mode in ("L", "LA") or rawmode.startswith("LA")
    if stored == 16:
        notes.append(
            f"16-bit {'grey+alpha' if grey else 'colour'} is decoded by Pillow to 8 bits per channel; "
            "enlarged and written as 8-bit"
        )
    pixels = np.asarray(img) if compact else np.asarray(img, dtype=np.float64)
    if img.mode in ("LA", "RGBA"):
        values, alpha = pixels[..., :-1], pixels[..., -1]
    else:
        values, alpha = pixels, None
    if grey and values.ndim == 3:
        values = values[..., 0]
    return values, alpha, grey, 8


def read_photo(path: str | Path, compact: bool = False) -> Photo:
    """Read an image file as a Photo, upright per its EXIF orientation.

    ``compact`` keeps the planes small for the streaming enlarger: 8-bit planes stay uint8,
    others are float32, and grey's three equal channels are one plane seen three times
    (a read-only view), so a 12-megapixel photo takes 36 MB, not 288 MB of float64.
    Raises UserError for a missing, unreadable, non-image or too-large file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an image")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                rawmode = _rawmode(img)  # before load(), which drops the tile
                source_format = img.format or ""
                if getattr(img, "n_frames", 1) > 1:
                    notes.append(f"{img.n_frames} frames/pages: only the first is enlarged")
                img.load()
                if img.mode not in _GREY_16 and img.mode not in ("I", "F") and _stored_bits(img, rawmode) > 8:
                    rawmode = rawmode if ";16" in rawmode else rawmode + ";16"  # TIFF: 16-bit samples
                icc = img.info.get("icc_profile") or None
                # Orientation applied; the returned image's EXIF has the tag removed, so viewers
                # will not turn the enlarged picture a second time.
                img = ImageOps.exif_transpose(img)
                exif = img.info.get("exif") or None  # TIFF keeps its tags elsewhere: not EXIF to copy
                if img.mode == "CMYK":
                    img, icc, more = _cmyk_to_rgb(img, icc)
                    notes += more
                values, alpha, grey, bits = _planes(img, rawmode, notes, compact)
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: image too large to decode safely") from None
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise UserError(f"{path}: cannot decode image ({exc})") from None

    if values.ndim == 3:
        rgb = np.ascontiguousarray(values)
    elif compact:
        rgb = np.broadcast_to(values[..., None], values.shape + (3,))
    else:
        rgb = np.repeat(values[..., None], 3, axis=2)
    alpha = None if alpha is None else np.ascontiguousarray(alpha)
    return Photo(rgb, alpha, grey, bits, icc, exif, source_format, notes)
