"""Which weights: the shipped models by name, and the one that enlarges a file when none is named.

Kept apart from the inference stack so that ``sr.export`` and the scripts can resolve a name
without loading it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sr.errors import UserError
from sr.jpeg_quality import jpeg_quality

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = "srresnet_x4"  # for enlarging without --weights: the strongest shipped model on clean images
PHOTO_WEIGHTS = "real_srresnet_x4"  # trained for JPEG photos: the default for JPEGs up to PHOTO_MAX_QUALITY
# Chosen on BSDS200-val (the 10 held-out photos), LR saved as JPEG at q70-98: real_srresnet_x4
# leads srresnet_x4 by 0.39 dB at q70 and 0.07 at q90, ties at q92 (-0.01) and trails by 0.11
# at q95 and 0.22 at q98, where few block edges are left to undo (README, "Enlarging real photos").
PHOTO_MAX_QUALITY = 90


def default_weights(path: str | Path) -> tuple[str, str]:
    """The shipped model that enlarges ``path`` when no --weights is given, and why, in words:
    the photo model for a JPEG saved at quality PHOTO_MAX_QUALITY or lower, else the clean one."""
    quality = jpeg_quality(path)
    if quality is None:
        return DEFAULT_WEIGHTS, "not a JPEG"
    if quality <= PHOTO_MAX_QUALITY:
        return PHOTO_WEIGHTS, f"JPEG quality {PHOTO_MAX_QUALITY} or lower"
    return DEFAULT_WEIGHTS, f"JPEG quality above {PHOTO_MAX_QUALITY}"


def shipped_names(weights_dir: Path | None = None) -> list[str]:
    """The shipped checkpoints' names (``fsrcnn_x3``, ...), sorted."""
    return sorted(p.stem for p in (weights_dir or WEIGHTS_DIR).glob("*.pth"))


def resolve_weights(spec: str | Path, weights_dir: Path | None = None) -> Path:
    """A checkpoint (.pth) or ONNX (.onnx) file, or the name of a shipped checkpoint
    (``fsrcnn_x3`` -> weights/fsrcnn_x3.pth); ``weights_dir`` defaults to the weights/ folder
    beside the ``sr`` package. Raises UserError naming the shipped ones."""
    path, spec, folder = Path(spec), str(spec), weights_dir or WEIGHTS_DIR
    if path.is_file():
        return path
    shipped = folder / (spec if spec.endswith(".pth") else f"{spec}.pth")
    if os.sep not in spec and shipped.is_file():
        return shipped
    names = shipped_names(folder)
    known = f" (shipped: {', '.join(names)})" if names else ""
    raise UserError(f"{spec}: no such checkpoint file or shipped weights{known}")
