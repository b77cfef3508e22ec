"""How much of a photo model's detail over bicubic to keep for lossy files, chosen on validation.

    python -m experiments.detail_rule                      # real_srresnet_x4 by file (the default), then real_fsrcnn_x4
    python -m experiments.detail_rule --models real_fsrcnn_x4 --details 1 0.9 0.8

For each of the 10 BSDS200-val photos (held out of every photo model's training; their HR from
data/h5/BSDS200-val_x4_lr-hr_rgb.h5, made by experiments/cpu_runs/heavy_photo.sh) and each field
kind, the LR is written as the file a user would have and read back, the photo model runs as the
enlarger would for that file (blended toward its heavy anchor by the quality read, no pull), and
its output is pulled toward bicubic: out = bicubic + detail x (model - bicubic). Scored like the
field benchmark: Y PSNR gain over bicubic and the share of 32x32 blocks harmed. The rule: the
detail with the highest mean gain over the lossy kinds (the files the photo model gets) among
those whose harmed share is within the bound on every lossy kind. Writes experiments/heavy/detail_<model>.json.
Test sets are not read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr.data.degradation import mod_crop
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, save_field_lr
from sr.data.h5 import load_eval_set
from sr.metrics import harmed_share, psnr
from sr.protocol import bicubic_score
from sr.upscaler import Upscaler
from sr.weights import named_choice

SCALE = 4
VAL = Path("data/h5/BSDS200-val_x4_lr-hr_rgb.h5")
LOSSLESS = ("clean", "resized")  # kinds whose files mostly go to the clean model: reported, not in the rule
BOUND = {"real_srresnet_x4": 0.02, "real_fsrcnn_x4": 0.03}  # the harmed share each model is held to


def tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float64) / 255.0)


def score_details(model: str, details: list[float], kinds: list[str], passes: int = 1) -> dict[str, dict[str, list[float]]]:
    """kind -> detail -> [mean gain in dB, mean harmed share] over the validation photos, the model
    run over ``passes`` self-ensemble passes."""
    _, images = load_eval_set(VAL)
    work, upscalers, out = Path(tempfile.mkdtemp(prefix="detail_")), {}, {}
    for kind in kinds:
        rows = {d: [] for d in details}
        for im in images:
            hr = mod_crop(im.hr, SCALE)
            saved = save_field_lr(hr, SCALE, kind, work / f"{im.name}_{kind.replace(':', '').replace('+', '_')}")
            lr = np.array(Image.open(saved).convert("RGB"))
            bicubic = bicubic_score(lr, hr, SCALE).image
            choice = named_choice(model, saved, detail=1.0, passes=passes)
            if choice.label not in upscalers:
                upscalers[choice.label] = Upscaler.chosen(choice, amp=False)
            pred = upscalers[choice.label].score(lr, hr).image.astype(np.float64)
            truth = hr[:pred.shape[0], :pred.shape[1]]
            base = psnr(tensor(bicubic), tensor(truth), crop_border=SCALE).item()
            for d in details:
                pulled = np.clip(np.round(bicubic + d * (pred - bicubic)), 0, 255).astype(np.uint8)
                gain = psnr(tensor(pulled), tensor(truth), crop_border=SCALE).item() - base
                rows[d].append((gain, harmed_share(tensor(pulled), tensor(bicubic), tensor(truth), crop_border=SCALE)))
        out[kind] = {f"{d:g}": [float(np.mean([r[0] for r in v])), float(np.mean([r[1] for r in v]))] for d, v in rows.items()}
        print(f"{model} {kind:16s}", "  ".join(f"{d}: {g:+.3f}/{h:.1%}" for d, (g, h) in out[kind].items()), flush=True)
    return out


def choose(scores: dict, bound: float) -> str:
    lossy = [k for k in scores if k not in LOSSLESS]
    details = list(scores[lossy[0]])
    within = [d for d in details if all(scores[k][d][1] <= bound for k in lossy)] or details[-1:]
    return max(within, key=lambda d: np.mean([scores[k][d][0] for k in lossy]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(BOUND), choices=list(BOUND))
    p.add_argument("--details", nargs="+", type=float, default=[1.0, 0.9, 0.8, 0.7, 0.6])
    p.add_argument("--kinds", nargs="+", default=[*FIELD_KINDS, *HEAVY_KINDS])
    args = p.parse_args(argv)
    torch.manual_seed(0)
    results = {}
    for model in args.models:
        scores = score_details(model, args.details, args.kinds)
        chosen = choose(scores, BOUND[model])
        results[model] = {"chosen": float(chosen), "bound": BOUND[model], "scores": scores}
        print(f"{model}: detail {chosen} (the highest mean gain over the lossy kinds with at most "
              f"{BOUND[model]:.0%} of blocks harmed on each)", flush=True)
        save_result("detail", model, results[model])
    return results


def save_result(rule: str, model: str, result: dict) -> None:
    """experiments/heavy/<rule>_<model>.json: what a rule chose, and the scores it chose it on."""
    (Path("experiments/heavy") / f"{rule}_{model}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
