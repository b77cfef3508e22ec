"""What the training degradation does, as settings and as --degrade-* flags.

    settings = DegradationSettings(jpeg_quality=(30, 95), webp_share=0.4)   # or from the flags:
    add_degradation_args(parser); settings = settings_from_args(parser.parse_args())

``sr.data.realistic`` applies them to batches; a run records them in its args.json and
checkpoints (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from sr.errors import UserError

RESIZE_MODES = ("bicubic", "bilinear", "area")
SIGMA_SCALE = 4  # blur_sigma is given in HR pixels at x4 (Real-ESRGAN's figures) and scales with the factor


@dataclass(frozen=True)
class DegradationSettings:
    """Probabilities and ranges of each step; ranges are (low, high), drawn uniformly."""

    clean_prob: float = 0.1  # share of samples that get the protocol's bicubic LR and nothing else
    blur_prob: float = 0.8
    blur_sigma: tuple[float, float] = (0.2, 3.0)  # std in HR px at x4; times scale / 4 at other scales
    aniso_prob: float = 0.5  # share of blurs whose two axes get independent sigmas and a random angle
    resize_modes: tuple[str, ...] = RESIZE_MODES  # one drawn per sample, with equal chances
    noise_prob: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 15.0)  # std on the 0-255 scale
    grey_noise_prob: float = 0.4  # share of noisy samples whose noise is the same in R, G and B
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[int, int] = (30, 95)  # inclusive
    # What files carry besides one aligned JPEG; every one off by default, so runs and
    # recipes made before them keep their data. The field recipe turns them on by flag.
    webp_share: float = 0.0  # share of compressed samples saved as lossy WebP instead of JPEG (same quality draw)
    grid_shift_prob: float = 0.0  # share of compressions whose 8x8 grid is moved by 0-7 px down and right
    resize_after_prob: float = 0.0  # share of samples compressed at a larger size, then downscaled to the LR
    resize_after_ratio: tuple[float, float] = (1.25, 2.5)  # that size over the LR size
    second_prob: float = 0.0  # share of samples degraded a second time (Real-ESRGAN's second order): blur, noise, compression
    second_blur_sigma: tuple[float, float] = (0.2, 0.8)  # std of the second blur, in LR pixels (half the second rounds)
    second_noise_sigma: tuple[float, float] = (0.0, 5.0)  # std of the second noise, 0-255 scale
    second_quality: tuple[int, int] = (60, 95)  # quality of the second compression, inclusive
    second_swap_prob: float = 0.0  # share of second saves made in the other format than the first (JPEG <-> WebP)

    def __post_init__(self):
        for name in ("resize_after_ratio", "second_blur_sigma", "second_noise_sigma", "second_quality"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi or (name == "resize_after_ratio" and lo < 1):
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high (ratios >= 1), got {(lo, hi)}")
        if not (1 <= self.second_quality[0] and self.second_quality[1] <= 100):
            raise ValueError(f"second_quality must be within 1..100, got {self.second_quality}")
        for name in ("clean_prob", "blur_prob", "aniso_prob", "noise_prob", "grey_noise_prob", "jpeg_prob",
                     "webp_share", "grid_shift_prob", "resize_after_prob", "second_prob", "second_swap_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name, lowest in (("blur_sigma", 1e-3), ("noise_sigma", 0.0), ("jpeg_quality", 1)):
            lo, hi = getattr(self, name)
            if not lowest <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with {lowest} <= low <= high, got {(lo, hi)}")
        if self.jpeg_quality[1] > 100:
            raise ValueError(f"jpeg_quality must be at most 100, got {self.jpeg_quality}")
        if not self.resize_modes or set(self.resize_modes) - set(RESIZE_MODES):
            raise ValueError(f"resize_modes must be a non-empty subset of {RESIZE_MODES}, got {self.resize_modes}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists), for args.json; in HDF5 attrs store ``json.dumps`` of it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DegradationSettings:
        """Inverse of ``to_dict``."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


DEFAULTS = DegradationSettings()


def probability(text: str) -> float:
    """An argparse ``type``: a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return value


# Each setting's --degrade-* flag: what it means ("{default}" is filled in). The flag's form follows
# the default: a probability, a (low, high) range, or the list of resize modes.
FLAG_HELP = {
    "clean_prob": "share of samples given the plain bicubic LR of the evaluation protocol",
    "blur_prob": "probability of a Gaussian blur before downscaling",
    "blur_sigma": "range of the blur's std in HR pixels at x4, times scale/4 at other scales",
    "aniso_prob": "share of blurs that are anisotropic, with a random angle",
    "resize_modes": "downscaling interpolations, one drawn per sample",
    "noise_prob": "probability of Gaussian noise after downscaling",
    "noise_sigma": "range of the noise's std on the 0-255 scale",
    "grey_noise_prob": "share of noisy samples with the same noise in R, G and B",
    "jpeg_prob": "probability of JPEG compression of the LR",
    "jpeg_quality": "range of the JPEG quality, inclusive, 1-100",
    "webp_share": "share of compressed samples saved as lossy WebP instead of JPEG, at the same qualities",
    "grid_shift_prob": "share of compressions whose block grid is moved 0-7 px down and right",
    "resize_after_prob": "share of samples compressed at a larger size and then shrunk to the LR size, as a photo resized "
                         "after it was saved",
    "resize_after_ratio": "range of that larger size over the LR size",
    "second_prob": "probability of a second round at the LR size: a light blur (half of them), noise and a second "
                   "JPEG/WebP save with a grid of its own, as Real-ESRGAN's second order",
    "second_blur_sigma": "range of the second blur's std in LR pixels",
    "second_noise_sigma": "range of the second noise's std, 0-255 scale",
    "second_quality": "range of the second save's quality, inclusive",
    "second_swap_prob": "share of second saves made in the other format than the first (a JPEG saved again as WebP)",
}


def _flag(name: str) -> str:
    return "--degrade-" + name.replace("_", "-")


def add_degradation_args(parser: argparse.ArgumentParser) -> None:
    """Add the --degrade-* flags, one per setting; their defaults are ``DegradationSettings()``'s."""
    g = parser.add_argument_group("photos: the degradation of --degrade (sr/data/realistic.py)")
    for f in dataclasses.fields(DegradationSettings):
        default = getattr(DEFAULTS, f.name)
        if f.name == "resize_modes":
            kind = dict(nargs="+", choices=RESIZE_MODES)
            shown = " ".join(default)
        elif isinstance(default, tuple):
            kind = dict(type=type(default[0]), nargs=2, metavar=("LOW", "HIGH"))
            shown = f"{default[0]:g} {default[1]:g}"
        else:
            kind = dict(type=probability, metavar="P")
            shown = f"{default:g}"
        g.add_argument(_flag(f.name), default=default, help=f"{FLAG_HELP[f.name]} (default: {shown})", **kind)


def settings_from_args(args: argparse.Namespace) -> DegradationSettings:
    """The settings of the --degrade-* flags; UserError on a bad range."""
    values = {f.name: getattr(args, "degrade_" + f.name) for f in dataclasses.fields(DegradationSettings)}
    try:
        return DegradationSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except ValueError as exc:  # the message starts with the field's name; name the flag instead
        field, problem = str(exc).split(" ", 1)
        raise UserError(f"{_flag(field)} {problem}") from None
