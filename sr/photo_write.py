"""Writing an enlarged photo as the same kind of file as the one read (``sr.photo.Photo``).

Alpha stays alpha (JPEG: composited over white), grey stays grey, 16-bit grey stays 16-bit
(computed from the unrounded values), and the ICC profile and EXIF travel with the pixels, as far
as the output format allows; what it cannot keep is said in a note.

    photo = read_photo("in.png", compact=True)               # sr.photo
    image, kind = enlarge(up, photo, "webp", outscale=3.5)   # sr.enlarge: the pixels to write
    for note in list(kind.notes) + write_image("out.webp", image, photo, "webp", quality=90):
        print(note)                                          # e.g. "WebP has no grey mode: ..."

16-bit output exists only as grey PNG/TIFF without alpha (Pillow (13) has no 16-bit colour or
grey+alpha mode to write); anything else is written as 8-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from sr.atomic import atomic_path
from sr.data.degradation import to_uint8
from sr.errors import UserError
from sr.photo import Photo

# Output formats: canonical name -> Pillow's format name. Keys of EXTENSIONS are what
# --format and the output file's extension may say.
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}
EXTENSIONS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp", "tif": "tiff", "tiff": "tiff"}
DEFAULT_QUALITY = {"jpg": 95, "webp": 90}


def pick_format(path: str | Path, format: str | None = None) -> str:
    """'png', 'jpg', 'webp' or 'tiff', from ``format`` when given, else the file's extension."""
    name = (format or Path(path).suffix).lower().lstrip(".")
    if name not in EXTENSIONS:
        what = f"format {format!r}" if format else f"extension {Path(path).suffix or '(none)'!r}"
        raise UserError(f"{path}: cannot write {what} (choose png, jpg, webp or tiff)")
    return EXTENSIONS[name]


@dataclass(frozen=True)
class OutputKind:
    """What a Photo becomes in one output format: the Pillow ``mode`` written (L, LA, RGB,
    RGBA or I;16), whether alpha is ``composited`` over white (JPEG), and ``notes`` on what
    the format could not keep."""

    mode: str
    composited: bool
    notes: tuple[str, ...]


def output_kind(photo: Photo, fmt: str) -> OutputKind:
    """The mode ``photo`` is written in as ``fmt``: as close to the Photo as the format allows."""
    notes = []
    alpha, composited = photo.alpha is not None, False
    if alpha and fmt == "jpg":
        # JPEG has no alpha: composite over white (as sr.data.images.load_rgb does on reading).
        alpha, composited = False, True
        notes.append("JPEG has no alpha: transparency composited over white")
    if photo.bits == 16:
        if photo.grey and not alpha and fmt in ("png", "tiff"):
            return OutputKind("I;16", composited, tuple(notes))
        if fmt in ("jpg", "webp"):
            notes.append(f"{PIL_FORMATS[fmt]} holds 8 bits per channel: written as 8-bit")
        else:
            kind = "grey with alpha" if photo.grey else "colour"
            notes.append(f"Pillow cannot write 16-bit {kind}: written as 8-bit")
    grey = photo.grey
    if grey and fmt == "webp":
        grey = False
        notes.append("WebP has no grey mode: written as RGB")
    mode = ("L" if grey else "RGB") + ("A" if alpha else "")
    return OutputKind(mode, composited, tuple(notes))


def output_pixels(values: np.ndarray, alpha: np.ndarray | None, kind: OutputKind) -> np.ndarray:
    """Float pixels -> the array Pillow writes in ``kind.mode``: uint8, or uint16 for I;16.

    ``values``: (h, w, 1) grey or (h, w, 3) colour in [0, 255], unrounded; ``alpha``: (h, w)
    or None. Works on a whole image or on any piece of one (every step is per pixel).
    """
    if kind.composited:
        a = alpha[..., None] / 255.0
        values, alpha = values * a + 255.0 * (1.0 - a), None
    if kind.mode == "I;16":
        # 16-bit grey, from the unrounded values: v / 255 * 65535.
        return np.clip(np.round(values[..., 0] / 255.0 * 65535.0), 0, 65535).astype(np.uint16)
    colours = 1 if kind.mode in ("L", "LA") else 3
    planes = values[..., :1] if colours == 1 else np.broadcast_to(values, values.shape[:2] + (3,))
    if kind.mode.endswith("A"):
        planes = np.concatenate([planes, alpha[..., None]], axis=2)
    array = to_uint8(planes)
    return array[..., 0] if array.shape[2] == 1 else array


def _image_for(photo: Photo, kind: OutputKind) -> Image.Image:
    """The Pillow image of a whole Photo in ``kind``."""
    values = photo.rgb[..., :1] if photo.grey else photo.rgb  # grey: the three channels are equal
    return Image.fromarray(output_pixels(values, photo.alpha, kind))  # L, LA, RGB, RGBA or I;16 from the shape


def _icc_fits(icc: bytes, mode: str) -> bool:
    """An ICC profile's colour space (header bytes 16-20) must match the pixels it describes."""
    space = icc[16:20]
    return space == (b"GRAY" if mode in ("L", "LA", "I;16") else b"RGB ")


def write_photo(path: str | Path, photo: Photo, quality: int | None = None, format: str | None = None) -> list[str]:
    """Write ``photo`` to ``path`` atomically, in ``format`` or the format its extension names.

    Keeps alpha (PNG, WebP, TIFF; JPEG: composited over white), grey, 16-bit grey (PNG, TIFF),
    the ICC profile and EXIF. ``quality`` (1-100) is for jpg (default 95) and webp (default 90).
    Returns notes, one line each, on what the format could not keep; raises UserError for an
    unknown format, a bad quality or a failed write.
    """
    fmt = pick_format(path, format)
    kind = output_kind(photo, fmt)
    return list(kind.notes) + write_image(path, _image_for(photo, kind), photo, fmt, quality)


def write_image(path: str | Path, img: Image.Image, photo: Photo, fmt: str, quality: int | None = None) -> list[str]:
    """Write ``img`` (the pixels of ``photo``, in ``output_kind(photo, fmt).mode``) to ``path``
    atomically as ``fmt``, with ``photo``'s ICC profile and EXIF. Returns notes (see write_photo)."""
    notes: list[str] = []
    params: dict = {}
    if fmt in DEFAULT_QUALITY:
        q = DEFAULT_QUALITY[fmt] if quality is None else quality
        if not 1 <= q <= 100:
            raise UserError(f"quality must be 1..100, got {q}")
        params["quality"] = q
    elif quality is not None:
        notes.append(f"quality applies to jpg and webp only: ignored for {fmt}")
    if fmt == "tiff" and features.check("libtiff"):
        params["compression"] = "tiff_deflate"  # lossless; uncompressed enlargements are huge
    if photo.icc:
        if _icc_fits(photo.icc, img.mode):
            params["icc_profile"] = photo.icc
        else:
            notes.append("ICC profile dropped: it does not describe the written colour mode")
    if photo.exif:
        params["exif"] = photo.exif

    with atomic_path(path) as tmp:
        try:
            img.save(tmp, format=PIL_FORMATS[fmt], **params)
        except ValueError as exc:
            raise UserError(f"cannot write {path}: {exc}") from None
    return notes
