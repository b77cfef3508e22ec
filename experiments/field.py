"""The field benchmark: every shipped x4 model, and what the default picks, on the files people have.

    SR_DATA=../shared/datasets python -m experiments.field                 # BSDS100, all 100 images
    SR_DATA=../shared/datasets python -m experiments.field --images 30     # the first 30 (issue 20's table)
    python -m experiments.field --weights runs/x/best.pth --name candidate # a candidate beside them

For each kind of ``sr.data.field`` (clean, JPEG q75, WebP q75, resized after JPEG, re-saved,
noisy JPEG) each image's LR is written as the file a user would have (JPEG and WebP kinds in
their own container, the others as PNG) and read back; every model enlarges it by the protocol's
path (fp32) and is scored on Y against the HR (PSNR, basicsr protocol, border 4). The *default*
column runs, per file, the model ``sr.weights.default_weights`` picks from the file itself. The
*denoise* columns blend srresnet_x4 and real_srresnet_x4 (``eval.py --denoise S``).

Prints the table as gain over bicubic (dB), with bicubic's own PSNR, and writes it with the
per-image scores to experiments/field.md and experiments/field.json. Scores are cached there by
the weights' sha256, so a rerun scores only what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sr.atomic import atomic_write_text
from sr.data.degradation import mod_crop
from sr.data.field import FIELD_KINDS, check_kind, save_field_lr
from sr.data.images import list_images, load_rgb
from sr.data.sets import data_root
from sr.cli import add_data_root
from sr.distributed import describe_cpu
from sr.inference import Upscaler
from sr.protocol import bicubic_score
from sr.weights import DEFAULT_WEIGHTS, PHOTO_WEIGHTS, blended_checkpoint, default_weights, resolve_weights, shipped_names
from sr.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
OUT_MD, OUT_JSON = ROOT / "experiments" / "field.md", ROOT / "experiments" / "field.json"
SCALE, SET = 4, "BSDS100"
DENOISE = (0.5,)  # blend strengths shown beside the two ends (0: srresnet_x4, 1: real_srresnet_x4)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def shipped_x4() -> list[str]:
    return [n for n in shipped_names() if n.endswith(f"_x{SCALE}")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=0, help="the first N images of BSDS100 (default 0: all)")
    p.add_argument("--kinds", nargs="+", type=check_kind, default=list(FIELD_KINDS))
    p.add_argument("--models", nargs="+", help="shipped names (default: every shipped x4 model)")
    p.add_argument("--weights", nargs="*", default=[], type=Path, help="more checkpoints to score beside them")
    p.add_argument("--name", nargs="*", default=[], help="their names in the table (default: the file's stem)")
    p.add_argument("--no-denoise", action="store_true", help="leave out the --denoise blend columns")
    add_data_root(p, "BSDS100/")
    p.add_argument("--out", type=Path, default=OUT_MD, help=f"the table (default {OUT_MD.relative_to(ROOT)}; JSON beside it)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    files = list_images(data_root(args.data_root) / SET)
    files = files[: args.images] if args.images else files
    # The two the picker chooses between are always scored, so the default column can be read off.
    names = dict.fromkeys([*(args.models or shipped_x4()), DEFAULT_WEIGHTS, PHOTO_WEIGHTS])
    models: dict[str, Path] = {n: resolve_weights(n) for n in names}
    for i, path in enumerate(args.weights):
        models[args.name[i] if i < len(args.name) else path.stem] = path
    work = Path(tempfile.mkdtemp(prefix="field_"))
    if not args.no_denoise:
        clean, photo = load_checkpoint(resolve_weights(DEFAULT_WEIGHTS)), load_checkpoint(resolve_weights(PHOTO_WEIGHTS))
        for s in DENOISE:
            blended = work / f"denoise_{s:g}.pth"
            save_checkpoint(blended, blended_checkpoint(clean, photo, s))
            models[f"--denoise {s:g}"] = blended
    json_path = args.out.with_suffix(".json")
    cache = json.loads(json_path.read_text()) if json_path.exists() else {}
    scores: dict = cache.get("scores", {})  # sha -> kind -> image -> psnr
    upscalers: dict[str, Upscaler] = {}
    keys = {name: sha256(weights) for name, weights in models.items()}  # read once: files may change under a long run
    started = time.perf_counter()
    per_kind: dict[str, dict[str, list[float]]] = {}
    picks: dict[str, dict[str, int]] = {}
    for kind in args.kinds:
        rows = per_kind.setdefault(kind, {})
        for path in files:
            hr = mod_crop(load_rgb(path), SCALE)
            saved = save_field_lr(hr, SCALE, kind, work / f"{path.stem}_{kind.replace(':', '')}")
            lr = np.array(Image.open(saved).convert("RGB"))
            rows.setdefault("bicubic", []).append(bicubic_score(lr, hr, SCALE).scores["psnr"])
            for name, weights in models.items():
                key = keys[name]
                cached = scores.setdefault(key, {}).setdefault(kind, {})
                if path.stem not in cached:
                    if name not in upscalers:
                        upscalers[name] = Upscaler.load(weights)
                    cached[path.stem] = upscalers[name].score(lr, hr).scores["psnr"]
                rows.setdefault(name, []).append(cached[path.stem])
            picked, _ = default_weights(saved)
            picks.setdefault(kind, {}).setdefault(picked, 0)
            picks[kind][picked] += 1
            rows.setdefault("default", []).append(rows[picked][-1])
        print(f"{kind}: done ({time.perf_counter() - started:.0f} s)", flush=True)
        # Saved after every kind: an interrupted run keeps what it scored, and a rerun starts from there.
        atomic_write_text(json_path, json.dumps({**cache, "scores": scores}, indent=1) + "\n")
    table = render(per_kind, picks, list(models), len(files))
    print(table)
    atomic_write_text(json_path, json.dumps({"set": SET, "images": len(files), "cpu": describe_cpu(), "scores": scores,
                                             "means": {k: {m: float(np.mean(v)) for m, v in rows.items()} for k, rows in per_kind.items()},
                                             "picks": picks}, indent=1) + "\n")
    atomic_write_text(args.out, table + "\n")
    return per_kind


def render(per_kind: dict, picks: dict, models: list[str], n: int) -> str:
    head = ["kind", "bicubic (dB)", *(f"`{m}`" if not m.startswith("--") else m for m in models), "the default picks"]
    lines = [f"BSDS100 x{SCALE}, first {n} images, PSNR on Y (fp32), gain over bicubic in dB; each LR read from the file a "
             "user would have (JPEG/WebP kinds in their own container, others PNG).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, rows in per_kind.items():
        base = float(np.mean(rows["bicubic"]))
        cells = [kind, f"{base:.2f}"] + [f"{np.mean(rows[m]) - base:+.2f}" for m in models]
        chosen = ", ".join(f"{name} {count}" for name, count in sorted(picks[kind].items()))
        cells.append(f"{np.mean(rows['default']) - base:+.2f} ({chosen})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
