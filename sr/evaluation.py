"""Scoring images under the protocol with a loaded model: degrade a ground truth, reconstruct it, score both.

    up = Upscaler.load("fsrcnn_x3")
    result = evaluate_image("butterfly.png", 3, up)   # bicubic and the model, scored
    means = mean_scores([result.model.scores, ...])

eval.py's --image and --dataset modes and experiments/showcase.py go through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sr.protocol import Scored, bicubic_score, degrade, ground_truth

if TYPE_CHECKING:  # for the annotation only: scoring sits above the enlarger, never imported by it
    from sr.inference import Upscaler


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
