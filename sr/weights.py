"""Which weights: the shipped models by name, and the one that enlarges a file when none is named.

Kept apart from the inference stack so that ``sr.export`` and the scripts can resolve a name
without loading it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from sr.errors import UserError
from sr.file_history import read_history

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = "srresnet_x4"  # for enlarging without --weights: the strongest shipped model on clean images
PHOTO_WEIGHTS = "real_srresnet_x4"  # trained for JPEG photos: the default for JPEGs up to PHOTO_MAX_QUALITY
# Chosen on BSDS200-val (the 10 held-out photos), LR saved as JPEG at q70-98: real_srresnet_x4
# leads srresnet_x4 by 0.39 dB at q70 and 0.07 at q90, ties at q92 (-0.01) and trails by 0.11
# at q95 and 0.22 at q98, where few block edges are left to undo (docs/photos.md).
PHOTO_MAX_QUALITY = 90
# A lossless file (PNG, TIFF, lossless WebP) whose pixels show a block grid at least this strong
# (sr.file_history.blockiness) is a screenshot or re-save of a compressed photo. The lowest value
# above all 10 clean BSDS200-val LR images (x4, highest 0.035); their WebP q75 and re-saved JPEG
# LR start at 0.034-0.035, JPEG q75 at 0.016 (textured photos hide their blocks).
BLOCKY = 0.04
class Anchor(NamedTuple):
    """A photo model's heavy anchor: the same network fine-tuned on JPEG and WebP at quality 20-60 and
    double compression (experiments/cpu_runs/heavy_photo.sh), and the ramp of the blend toward it over
    the quality read from a file: none at ``start`` and above, all of it at ``full`` and below, linear
    between. Each ramp is chosen on BSDS200-val over the mild and heavy field kinds together
    (``experiments.heavy_rule``; docs/photos.md).

    ``passes``: the self-ensemble passes (``sr.models.self_ensemble``) for a file read as lossy, and
    ``detail``: the share of the model's difference from bicubic then kept (out = bicubic + detail x
    (model - bicubic)). Chosen together on BSDS200-val (``experiments.passes_rule``, docs/photos.md):
    for each number of passes, the detail with the highest mean gain over the lossy field kinds
    among those harming at most 2% (SRResNet) or 3% (FSRCNN) of 32x32 blocks on each kind; of up to
    2 passes (twice the time of one, a cost fixed beforehand), the best. SRResNet sharpens block
    edges it cannot undo: pulled back a fifth, it harms half as many blocks and loses nothing;
    two passes, the input as it is and flipped, add 0.02 dB and harm fewer blocks still."""

    name: str
    start: int
    full: int
    detail: float = 1.0
    passes: int = 1


HEAVY_ANCHORS = {"real_srresnet_x4": Anchor("heavy_srresnet_x4", 100, 30, 0.8, 2),
                 "real_fsrcnn_x4": Anchor("heavy_fsrcnn_x4", 95, 60, 1.0, 2)}


class Choice(NamedTuple):
    """The shipped model for a file, why (what was read from it), how far toward the photo model's
    heavy anchor it is blended (0: not at all), how much of its detail over bicubic is kept, and
    over how many self-ensemble passes it runs."""

    weights: str
    reason: str
    heavy: float = 0.0
    detail: float = 1.0
    passes: int = 1

    @property
    def label(self) -> str:
        """A name for what runs: "real_srresnet_x4", or "real_srresnet_x4 +heavy 0.5 detail 0.8 passes 2"."""
        if not self.heavy and self.detail == 1 and self.passes == 1:
            return self.weights  # None for a file too large to read: the --weights or default model
        return (f"{self.weights}{f' +heavy {self.heavy:g}' if self.heavy else ''}"
                f"{f' detail {self.detail:g}' if self.detail != 1 else ''}{f' passes {self.passes}' if self.passes != 1 else ''}")


def heavy_strength(quality: int | None, anchor: Anchor) -> float:
    """How far toward ``anchor`` a file whose last lossy save had ``quality`` is taken (None: 0)."""
    if quality is None:
        return 0.0
    return round(min(1.0, max(0.0, (anchor.start - quality) / (anchor.start - anchor.full))), 2)


def with_heavy(weights: str, quality: int | None, reason: str, weights_dir: Path | None = None,
               heavy: float | None = None, lossy: bool = True, detail: float | None = None,
               passes: int | None = None) -> Choice:
    """``weights`` for a file whose quality was read as ``quality``: blended toward its heavy anchor by
    ``heavy_strength`` (or by ``heavy``, --heavy) when it has one shipped beside it, and for a
    ``lossy`` file pulled toward bicubic by the anchor's ``detail`` (or ``detail``, --detail) and run
    over its ``passes`` (or ``passes``, --passes); as it is otherwise."""
    anchor = HEAVY_ANCHORS.get(weights)
    if not anchor or not shipped_file(anchor.name, weights_dir):
        return Choice(weights, reason, passes=passes or 1)
    strength = heavy_strength(quality, anchor) if heavy is None else heavy
    how = "heavy compression" if heavy is None else "--heavy"
    kept = (anchor.detail if lossy else 1.0) if detail is None else detail
    runs = (anchor.passes if lossy else 1) if passes is None else passes
    return Choice(weights, reason + (f"; {how}: {strength:g} toward {anchor.name}" if strength else "")
                  + (f"; {kept:g} of its detail over bicubic kept" if kept != 1 else ""), strength, kept, runs)


def default_weights(path: str | Path, weights_dir: Path | None = None, heavy: float | None = None,
                    detail: float | None = None, passes: int | None = None) -> Choice:
    """The shipped model that enlarges ``path`` when no --weights is given, and why, in words.

    The photo model for what went through lossy compression: a JPEG saved at quality
    PHOTO_MAX_QUALITY or lower, a lossy WebP (whatever its name), or a lossless file whose pixels
    carry a block grid (BLOCKY); the clean model for everything else. Read from the file, not its
    name; the quality read (``sr.file_history``) sets how far it is blended toward its heavy anchor.
    """
    history = read_history(path)
    read = history.describe()
    if history.container == "jpeg":
        if history.heaviest <= PHOTO_MAX_QUALITY:
            return with_heavy(PHOTO_WEIGHTS, history.heaviest, f"{read}: quality {PHOTO_MAX_QUALITY} or lower", weights_dir,
                              heavy, detail=detail, passes=passes)
        return Choice(DEFAULT_WEIGHTS, f"{read}: quality above {PHOTO_MAX_QUALITY}", passes=passes or 1)
    if history.lossy:
        return with_heavy(PHOTO_WEIGHTS, history.quality, read, weights_dir, heavy, detail=detail, passes=passes)
    if history.blockiness >= BLOCKY:
        return with_heavy(PHOTO_WEIGHTS, history.quality, f"{read} >= {BLOCKY}: compression blocks", weights_dir, heavy,
                          detail=detail, passes=passes)
    return Choice(DEFAULT_WEIGHTS, f"{history.container} without compression damage", passes=passes or 1)


def named_choice(weights: str, path: str | Path, weights_dir: Path | None = None, heavy: float | None = None,
                 detail: float | None = None, passes: int | None = None) -> Choice:
    """``--weights NAME`` for ``path``: a photo model with a heavy anchor is blended toward it by the
    quality read from the file, as the default is; any other model runs as it is."""
    if weights not in HEAVY_ANCHORS:
        return Choice(weights, "given by --weights", passes=passes or 1)
    history = read_history(path)
    lossy = history.lossy or (history.blockiness or 0) >= BLOCKY
    return with_heavy(weights, history.heaviest if lossy else None, history.describe(), weights_dir, heavy, lossy, detail,
                      passes)


def load_choice(choice: Choice, weights_dir: Path | None = None) -> dict[str, Any]:
    """The weights-only checkpoint a choice runs: the shipped model, or its blend with its heavy anchor."""
    from sr.checkpoint import load_checkpoint  # the heavy checkpoint code only where a checkpoint is read

    state = load_checkpoint(resolve_weights(choice.weights, weights_dir))
    if not choice.heavy:
        return state
    anchor = load_checkpoint(resolve_weights(HEAVY_ANCHORS[choice.weights].name, weights_dir))
    blend = blended_checkpoint(state, anchor, choice.heavy)
    return {**blend, "name": choice.weights}  # enlarged files keep the photo model's name


# Shipped weights are .safetensors; a weights/ folder from before them holds .pth, still read.
SHIPPED_SUFFIXES = (".safetensors", ".pth")


def shipped_names(weights_dir: Path | None = None) -> list[str]:
    """The shipped checkpoints' names (``fsrcnn_x3``, ...), sorted."""
    folder = weights_dir or WEIGHTS_DIR
    return sorted({p.stem for suffix in SHIPPED_SUFFIXES for p in folder.glob(f"*{suffix}")})


def shipped_file(name: str, weights_dir: Path | None = None) -> Path | None:
    """weights/<name>.safetensors, else weights/<name>.pth, else None."""
    for suffix in SHIPPED_SUFFIXES:
        path = (weights_dir or WEIGHTS_DIR) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def resolve_weights(spec: str | Path, weights_dir: Path | None = None) -> Path:
    """A weights file (.safetensors, .pth, .onnx, or a community model's .pt/.ckpt), or the name
    of a shipped checkpoint (``fsrcnn_x3`` -> weights/fsrcnn_x3.safetensors, or .pth from before);
    ``weights_dir`` defaults to the weights/ folder beside the ``sr`` package. Raises UserError
    naming the shipped ones."""
    path, spec, folder = Path(spec), str(spec), weights_dir or WEIGHTS_DIR
    if path.is_file():
        return path
    name = spec.removesuffix(path.suffix) if path.suffix in SHIPPED_SUFFIXES else spec
    shipped = shipped_file(name, folder) if os.sep not in spec and name else None
    if shipped:
        return shipped
    names = shipped_names(folder)
    known = f" (shipped: {', '.join(names)})" if names else ""
    raise UserError(f"{spec}: no such checkpoint file or shipped weights{known}")


def blended_checkpoint(clean: dict[str, Any], photo: dict[str, Any], strength: float) -> dict[str, Any]:
    """A weights-only checkpoint between two of one architecture: ``(1 - strength) * clean + strength * photo``,
    tensor by tensor (Real-ESRGAN's ``-dn``, which blends realesr-general-x4v3 with its wdn twin the same way).

    ``strength`` 0 is the clean model, 1 the photo model; in between the photo model's clean-up is
    weakened. Both must be the same network (architecture, keyword arguments, scale, colour, layout).
    """
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"--denoise {strength:g}: give a strength from 0 (the clean model) to 1 (the photo model)")
    facts = ("arch", "model_kwargs", "scale", "color", "layout")
    if any(clean[k] != photo[k] for k in facts) or clean["model"].keys() != photo["model"].keys():
        raise UserError("--denoise blends two checkpoints of one network; these differ")
    model = {k: torch.lerp(clean["model"][k].float(), photo["model"][k].float(), strength) if clean["model"][k].is_floating_point()
             else photo["model"][k] for k in clean["model"]}
    return {**{k: clean[k] for k in facts}, "model": model, "name": f"denoise{strength:g}_x{clean['scale']}"}
