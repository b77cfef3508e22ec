"""Score the shipped weights and draw the comparison figures for the README.

    SR_DATA=../shared/datasets python -m experiments.showcase     # from the repository root

Every shipped checkpoint in weights/ is scored on Set5, Set14 and BSDS100 at its scale
(the standard protocol, fp32, through ``sr.inference`` as eval.py scores); the scores go
into experiments/weights.md (beside bicubic and the published numbers) and into each
weights/<name>.json. The figures are crops: bicubic | our models | ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sr.atomic import atomic_write_text
from sr.data.sets import data_root, resolve_images
from sr.data.degradation import mod_crop, upscale
from sr.protocol import degrade
from sr.figures import side_by_side
from sr.data.images import load_rgb, save_image
from sr.inference import Upscaler, evaluate_image, mean_scores

ROOT = Path(__file__).resolve().parent.parent
SETS = ("Set5", "Set14", "BSDS100")
# Published PSNR on Y, crop = scale (SPEC); None where the paper gives none.
PUBLISHED = {
    2: {"SRCNN (TPAMI 2016)": (36.66, None, None), "FSRCNN (91 images)": (36.94, None, None),
        "FSRCNN (91 + General-100)": (37.00, None, None)},
    3: {"SRCNN (TPAMI 2016)": (32.75, None, None), "FSRCNN (91 images)": (33.06, None, None),
        "FSRCNN (91 + General-100)": (33.16, None, None)},
    4: {"SRCNN (TPAMI 2016)": (30.48, None, 26.90), "FSRCNN (91 images)": (30.55, None, None),
        "FSRCNN (91 + General-100)": (30.71, None, 26.98), "SRResNet (ImageNet)": (32.05, None, 27.58),
        "SRGAN": (29.40, None, 25.16)},
}
FIGURES = ROOT / "experiments" / "figures"


def score(weights: Path | None, dataset: str, scale: int) -> dict:
    """Mean scores of a checkpoint (or bicubic, for None) on a set, as eval.py --dataset gives them."""
    upscaler = Upscaler.load(weights, "cpu", amp=False) if weights else None
    _, files = resolve_images(dataset, data_root())
    evaluations = [evaluate_image(path, scale, upscaler) for path in files]
    return mean_scores([(e.model or e.bicubic).scores for e in evaluations])


def table(shipped: list[Path]) -> str:
    lines = ["| scale | model | Set5 | Set14 | BSDS100 |", "|---|---|---|---|---|"]
    for scale in (2, 3, 4):
        bic = [score(None, s, scale) for s in SETS]
        lines.append(f"| ×{scale} | bicubic | " + " | ".join(f"{b['psnr']:.2f} / {b['ssim']:.4f}" for b in bic) + " |")
        for name, values in PUBLISHED[scale].items():
            lines.append(f"| ×{scale} | {name}, published | " + " | ".join("—" if v is None else f"{v:.2f}" for v in values) + " |")
        for path in shipped:
            recipe_path = path.with_suffix(".json")
            recipe = json.loads(recipe_path.read_text())
            if recipe["scale"] != scale:
                continue
            scores = {s: score(path, s, scale) for s in SETS}
            recipe["scores"] = scores
            atomic_write_text(recipe_path, json.dumps(recipe, indent=2) + "\n")
            cells = " | ".join(f"**{scores[s]['psnr']:.2f}** / {scores[s]['ssim']:.4f}" for s in SETS)
            lines.append(f"| ×{scale} | **ours: `{path.stem}`** ({recipe['arch']}) | {cells} |")
    return "\n".join(lines)


def crop_figure(image: Path, scale: int, names: list[str], box: tuple[int, int, int], out: Path, zoom: int = 2) -> None:
    """bicubic | each model | ground truth, on one crop (top, left, size in HR pixels), enlarged by ``zoom``."""
    hr = mod_crop(load_rgb(image), scale)
    lr = degrade(hr, scale)
    bicubic = upscale(lr, scale)
    top, left, size = box

    def cut(img: np.ndarray) -> np.ndarray:
        part = img[top : top + size, left : left + size]
        return np.repeat(np.repeat(part, zoom, axis=0), zoom, axis=1)  # nearest: pixels stay visible

    panels = [(cut(bicubic), f"bicubic x{scale}")]
    for name in names:
        result = Upscaler.load(name, "cpu", amp=False).score(lr, hr).image
        panels.append((cut(result), f"{name}"))
    panels.append((cut(hr), "ground truth"))
    save_image(out, side_by_side(panels, font_size=15))
    print(f"wrote {out}")


def main() -> None:
    shipped = sorted((ROOT / "weights").glob("*.pth"))
    text = ["# Shipped weights under the standard protocol", "",
            "Written by `python -m experiments.showcase`: PSNR (dB) / SSIM on Y, border = scale, MATLAB bicubic "
            "degradation, each checkpoint scored as eval.py scores it.", "", table(shipped), ""]
    atomic_write_text(ROOT / "experiments" / "weights.md", "\n".join(text) + "\n")
    print("\n".join(text))
    root = data_root()
    names = {p.stem for p in shipped}
    y3 = [n for n in ("srcnn_x3", "fsrcnn_x3") if n in names]
    if y3:
        crop_figure(root / "Set14" / "zebra.png", 3, y3, (150, 240, 96), FIGURES / "comparison_x3.png")
    rgb4 = [n for n in ("srresnet_x4", "srgan_x4") if n in names]
    if rgb4:
        crop_figure(root / "BSDS100" / "108005.png", 4, rgb4, (80, 150, 128), FIGURES / "srgan_vs_srresnet_x4.png")


if __name__ == "__main__":
    main()
