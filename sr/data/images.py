"""Reading images of any PIL mode into one defined form: (H, W, 3) uint8 RGB."""

from __future__ import annotations

import glob
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sr.atomic import atomic_path
from sr.errors import UserError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any mode -> (H, W, 3) uint8.

    Transparent pixels are composited over white (their stored colour is often garbage);
    16-bit and 32-bit integer greys are scaled, not clipped, to 8 bits; float greys are
    taken to be in [0, 1] when they fit there, else in [0, 255].
    """
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(img, dtype=np.float64)
        # A 16-bit file's scale is its bit depth, whatever it holds (a dark one stays dark);
        # mode I (32-bit) carries no depth, so its range is guessed from its values.
        peak = 65535.0 if img.mode.startswith("I;16") or grey.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(grey / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        peak = 1.0 if grey.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(np.round(grey / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, upright per its EXIF orientation.

    Raises UserError for a missing, unreadable or non-image file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: image too large to decode safely") from None
    except OSError as exc:
        if exc.errno is not None:  # the file system's refusal (permission denied, I/O error), not the data's
            raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
        raise UserError(f"{path}: cannot decode image ({exc})") from None
    except (SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise UserError(f"{path}: cannot decode image ({exc})") from None


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write (H, W, 3) or (H, W) uint8 atomically; the format follows the file's extension."""
    path = Path(path)
    img = Image.fromarray(rgb)
    try:
        with atomic_path(path) as tmp:  # a failed write leaves the old file as it was; OSError -> UserError
            img.save(tmp)
    except ValueError as exc:  # e.g. an extension Pillow has no writer for
        raise UserError(f"{path}: cannot write image ({exc})") from None


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    # Hidden files are skipped: an interrupted atomic write leaves a ".name.XXXX.tmp.png" behind.
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"{folder}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def find_images(specs: Iterable[str | Path]) -> list[Path]:
    """Files named by each spec, in order, each once: a file (whatever its extension), a
    folder (its image files, as ``list_images``) or a glob pattern (the files it matches).

    Raises UserError for a spec that names nothing, so a typo fails before any work.
    """
    found: dict[Path, Path] = {}  # resolved -> as given
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = list_images(path)
        elif path.exists():
            files = [path]
        else:
            files = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_file())
            if not files:
                raise UserError(f"{spec}: no such file or folder, and no file matches it as a pattern")
        for file in files:
            found.setdefault(file.resolve(), file)
    return list(found.values())
