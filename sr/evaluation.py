"""Scoring images under the protocol with a loaded model: degrade a ground truth, reconstruct it, score both.

    up = Upscaler.load("fsrcnn_x3")
    result = evaluate_image("butterfly.png", 3, up)   # bicubic and the model, scored
    means = mean_scores([result.model.scores, ...])

eval.py's --image and --dataset modes and experiments/showcase.py go through here; ``summarise``
and ``write_scores`` give eval.py's summary and its --json record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sr.atomic import atomic_write_text
from sr.protocol import Scored, bicubic_score, degrade, ground_truth

if TYPE_CHECKING:  # for the annotation only
    from sr.upscaler import Upscaler


@dataclass(frozen=True)
class Evaluation:
    """One ground-truth image through the protocol: bicubic and (when given) a model."""

    path: Path
    hr: np.ndarray  # (H, W, 3) uint8, mod-cropped
    bicubic: Scored
    model: Scored | None  # None when only bicubic was asked for


def evaluate_image(path: str | Path, scale: int, upscaler: Upscaler | None = None, protocol: str = "basicsr",
                   jpeg: int | None = None) -> Evaluation:
    """Crop ``path`` to a multiple of ``scale``, degrade it (bicubic, then JPEG at quality
    ``jpeg`` if given), and score bicubic and ``upscaler`` on it under ``protocol``."""
    if upscaler is not None and upscaler.scale != scale:
        raise ValueError(f"the model is x{upscaler.scale}, asked to evaluate at x{scale}")
    hr = ground_truth(path, scale)
    lr = degrade(hr, scale, jpeg)
    model = upscaler.score(lr, hr, protocol) if upscaler is not None else None
    return Evaluation(Path(path), hr, bicubic_score(lr, hr, scale, protocol), model)


def mean_scores(scores: list[dict[str, float]]) -> dict[str, float]:
    """Per-image scores -> their means, key by key (the protocol averages per image)."""
    return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}


def summarise(evaluations: list[Evaluation]) -> dict:
    """Per-image rows (bicubic, and the model when there is one) and their means."""
    rows = [{"image": e.path.stem, "bicubic": e.bicubic.scores, **({"model": e.model.scores} if e.model else {})}
            for e in evaluations]
    summary = {"rows": rows, "bicubic_mean": mean_scores([r["bicubic"] for r in rows])}
    if evaluations[0].model is not None:
        summary["model_mean"] = mean_scores([r["model"] for r in rows])
    return summary


def write_scores(path: Path, summary: dict, *, scale: int, upscaler: Upscaler | None, source: str, protocol: str,
                 jpeg: int | None, degrade: str | None, passes: int = 1) -> None:
    """The scores as JSON (atomically): the model's means (bicubic's without one), bicubic's, what was
    measured and how, and the per-image rows."""
    main = summary.get("model_mean", summary["bicubic_mean"])
    bic = summary["bicubic_mean"]
    doc = {"psnr": main["psnr"], "ssim": main["ssim"], "bicubic_psnr": bic["psnr"], "bicubic_ssim": bic["ssim"],
           "scale": scale, "model": upscaler.arch if upscaler else "bicubic",
           "weights": str(upscaler.path) if upscaler else None, "source": source,
           "protocol": protocol, "jpeg": jpeg, "degrade": degrade, "tta": passes == 8, "passes": passes,
           "precision": upscaler.precision.name if upscaler else "fp32",
           "protocol_details": f"Y (BT.601, {'rounded as MATLAB rgb2ycbcr' if protocol == 'matlab' else 'unrounded'}), "
                               f"border {scale} px cropped, MATLAB bicubic degradation, 8-bit"
                               + (f", then JPEG quality {jpeg} (Pillow)" if jpeg is not None else "")
                               + (f", field kind {degrade} (sr.data.field)" if degrade else "")}
    for k in ("psnr_rgb", "ssim_rgb"):
        if k in main:
            doc[k] = main[k]
    doc["images"] = summary["rows"]
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
