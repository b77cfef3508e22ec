"""Score the shipped weights and draw the comparison figures for the README.

    SR_DATA=../shared/datasets python -m experiments.showcase     # from the repository root

Every shipped checkpoint in weights/ is scored on Set5, Set14 and BSDS100 at its scale
under both protocols (basicsr, the standard one, and matlab, the SRCNN/FSRCNN papers' rounded
Y; fp32, through ``sr.evaluation`` as eval.py scores); the scores go into
experiments/weights.md (beside bicubic and the published numbers) and into each
weights/<name>.json (``scores``, ``scores_matlab``, and the sha256 of the weights they are
for: unchanged weights are not scored again unless --rescore). The x4 models are also scored
on photos as eval.py --dataset BSDS100 --jpeg 75 scores them (``scores_jpeg75``), for the
real-photo table. The figures are crops: bicubic | our models | ground truth.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from sr.atomic import atomic_write_text
from sr.data.sets import data_root, resolve_images
from sr.data.degradation import mod_crop, upscale
from sr.protocol import PROTOCOLS, degrade
from sr.figures import side_by_side
from sr.data.images import load_rgb, save_image
from sr.evaluation import evaluate_image, mean_scores
from sr.upscaler import Upscaler
from sr.weights import shipped_file, shipped_names

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
# The real-photo measurement of issue 12: BSDS100 at x4, the LR saved as JPEG at quality 75.
PHOTO_SET, PHOTO_SCALE, PHOTO_JPEG = "BSDS100", 4, 75


def score(weights: Path | None, dataset: str, scale: int, jpeg: int | None = None,
          protocols: tuple[str, ...] = tuple(PROTOCOLS)) -> dict[str, dict]:
    """Mean scores of a checkpoint (or bicubic, for None) on a set under each protocol, as eval.py --dataset gives them."""
    upscaler = Upscaler.load(weights, "cpu", amp=False) if weights else None
    _, files = resolve_images(dataset, data_root())
    means = {}
    for protocol in protocols:
        evaluations = [evaluate_image(path, scale, upscaler, protocol, jpeg) for path in files]
        means[protocol] = mean_scores([(e.model or e.bicubic).scores for e in evaluations])
    return means


@functools.cache
def bicubic_scores(dataset: str, scale: int) -> dict[str, dict]:
    """``score(None, dataset, scale)``, computed once: the main table and the photo table share it."""
    return score(None, dataset, scale)


def score_photos(weights: Path | None) -> dict:
    """``eval.py --dataset BSDS100 --jpeg 75`` (basicsr protocol) of an x4 checkpoint, or of bicubic."""
    return score(weights, PHOTO_SET, PHOTO_SCALE, PHOTO_JPEG, ("basicsr",))["basicsr"]


def recorded_scores(path: Path, rescore: bool) -> tuple[dict, dict]:
    """(the recipe, {protocol: {set: scores}}) for shipped weights, scored now unless the recipe holds these weights' scores."""
    recipe_path = path.with_suffix(".json")
    recipe = json.loads(recipe_path.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    changed = False
    if rescore or recipe.get("scored_sha256") != digest or "scores_matlab" not in recipe:
        scores = {s: score(path, s, recipe["scale"]) for s in SETS}
        recipe["scores"] = {s: scores[s]["basicsr"] for s in SETS}
        recipe["scores_matlab"] = {s: scores[s]["matlab"] for s in SETS}
        recipe["scored_sha256"] = digest
        recipe.pop("scores_jpeg75", None)  # of other weights
        changed = True
    if recipe["scale"] == PHOTO_SCALE and not isinstance(recipe.get("scores_jpeg75", {}).get(PHOTO_SET), dict):
        recipe["scores_jpeg75"] = {PHOTO_SET: score_photos(path)}
        changed = True
    if changed:
        atomic_write_text(recipe_path, json.dumps(recipe, indent=2) + "\n")
    return recipe, {"basicsr": recipe["scores"], "matlab": recipe["scores_matlab"]}


def selected_on(recipe: dict) -> str:
    """The set that chose the shipped epoch, in a word or two, from the recipe."""
    if "last.pth" in recipe["checkpoint"]:
        return "last epoch"
    last = recipe["runs"][-1]
    validation = last.get("validation", {}).get("source_name")
    if not validation:  # recipes written before the validation set was recorded: the --eval file's name
        words = last["command"].split()
        validation = Path(words[words.index("--eval") + 1]).name.split("_x")[0] if "--eval" in words else "?"
    jpeg = last.get("validation", {}).get("lr_jpeg_quality")
    validation += f", LR JPEG q{jpeg}" if jpeg is not None else ""
    return f"{validation} (held out)" if "-val" in validation else f"**{validation} (not held out)**"


def cell(scores: dict, name: str, ssim: bool = True) -> str:
    both = f"{scores['basicsr'][name]['psnr']:.2f} · {scores['matlab'][name]['psnr']:.2f}"
    return both + (f" / {scores['basicsr'][name]['ssim']:.4f}" if ssim else "")


def table(shipped: list[Path], rescore: bool = False) -> str:
    lines = ["| scale | model | selected on | Set5 | Set14 | BSDS100 |", "|---|---|---|---|---|---|"]
    for scale in (2, 3, 4):
        bic = {s: bicubic_scores(s, scale) for s in SETS}
        bic = {protocol: {s: bic[s][protocol] for s in SETS} for protocol in PROTOCOLS}
        lines.append(f"| ×{scale} | bicubic | — | " + " | ".join(cell(bic, s) for s in SETS) + " |")
        for name, values in PUBLISHED[scale].items():
            lines.append(f"| ×{scale} | {name}, published | — | "
                         + " | ".join("—" if v is None else f"{v:.2f} (paper)" for v in values) + " |")
        for path in shipped:
            if json.loads(path.with_suffix(".json").read_text())["scale"] != scale:
                continue  # scored in its own scale's rows, so the progress reads in table order
            recipe, scores = recorded_scores(path, rescore)
            cells = " | ".join(f"**{cell(scores, s)}**" for s in SETS)
            lines.append(f"| ×{scale} | **ours: `{path.stem}`** ({recipe['arch']}) | {selected_on(recipe)} | {cells} |")
    return "\n".join(lines)


def photo_table(shipped: list[Path]) -> str:
    """The x4 models on BSDS100 with the LR saved as JPEG q75, beside their clean scores (basicsr)."""
    lines = [f"| model | selected on | {PHOTO_SET}, LR JPEG q{PHOTO_JPEG} | {PHOTO_SET}, clean LR |", "|---|---|---|---|"]
    bicubic = bicubic_scores(PHOTO_SET, PHOTO_SCALE)["basicsr"]
    rows = [("bicubic", "—", score_photos(None), bicubic)]
    for path in shipped:
        recipe, scores = recorded_scores(path, rescore=False)
        if recipe["scale"] == PHOTO_SCALE:
            rows.append((f"`{path.stem}` ({recipe['arch']})", selected_on(recipe), recipe["scores_jpeg75"][PHOTO_SET],
                         scores["basicsr"][PHOTO_SET]))
    for name, selected, photo, clean in rows:
        lines.append(f"| {name} | {selected} | {photo['psnr']:.2f} / {photo['ssim']:.4f} | {clean['psnr']:.2f} / {clean['ssim']:.4f} |")
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rescore", action="store_true", help="score every checkpoint again, even if its recipe holds its scores")
    args = p.parse_args()
    shipped = [shipped_file(name) for name in shipped_names()]
    text = ["# Shipped weights under both protocols", "",
            "Written by `python -m experiments.showcase`: PSNR (dB) on Y as `basicsr · matlab` (the standard protocol, "
            "then the SRCNN/FSRCNN papers' rounded Y), SSIM under basicsr; border = scale, MATLAB bicubic degradation, "
            "each checkpoint scored as eval.py scores it. *Selected on*: the set whose PSNR chose the shipped epoch.",
            "", table(shipped, args.rescore), "",
            f"## Photos: x{PHOTO_SCALE}, the LR saved as JPEG", "",
            f"`eval.py --dataset {PHOTO_SET} --jpeg {PHOTO_JPEG}`: the protocol's LR, then a Pillow JPEG save at quality "
            f"{PHOTO_JPEG}; PSNR / SSIM on Y (basicsr). The clean column repeats the table above.", "",
            photo_table(shipped), ""]
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
