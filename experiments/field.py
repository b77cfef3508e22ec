"""The field benchmark: every shipped x4 model, and what the default picks, on the files people have.

    SR_DATA=../shared/datasets python -m experiments.field --images 30    # the first 30 BSDS100 photos
    python -m experiments.field --images 30 --weights runs/x/best.pth --name candidate   # a candidate beside them
    python -m experiments.field --images 30 --kinds jpeg:30 webp:30 --models real_fsrcnn_x4 --no-denoise

For each kind of ``sr.data.field`` (the mild ones: clean, JPEG/WebP q75, resized after JPEG,
re-saved, noisy JPEG; the heavy ones: JPEG/WebP q30 and q40, a q50 JPEG saved again as WebP q70,
a q40 JPEG saved again as JPEG q80 on a shifted grid) each image's LR is written as the file a user
would have and read back; every model enlarges it by the protocol's path in fp32 and is scored on
Y against the HR (PSNR, basicsr protocol, border 4), with the share of 32x32 blocks it harms
(``sr.metrics.harmed_share``: more than 0.5 dB worse than bicubic there). The *default* column
runs, per file, what ``eval.py --upscale`` would pick for it (``sr.weights.default_weights``: a
shipped model, blended toward its heavy anchor for heavily compressed files).
The *peers* are the Real-ESRGAN models in ``--peers`` (default: ``peers/`` beside the data
root), scored the same way when that folder is there and skipped when it is not.

Prints the table (gain over bicubic in dB / harmed share) and writes it with the per-image
scores to experiments/field.md and experiments/field.json; scores are cached there by the
weights' sha256, so a rerun scores only what changed. For each heavy kind it saves a figure of
crops of a foliage photo (bicubic | the default | the peers | the original) to
experiments/figures/field_<kind>.png, for the eye.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr.atomic import atomic_write_text
from sr.cli import add_data_root
from sr.data.degradation import mod_crop
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, check_kind, save_field_lr
from sr.data.images import list_images, load_rgb, save_image
from sr.data.sets import data_root
from sr.checkpoint import load_checkpoint, save_checkpoint
from sr.distributed import describe_cpu
from sr.figures import side_by_side
from sr.models.self_ensemble import SelfEnsemble
from sr.upscaler import Upscaler
from sr.metrics import harmed_share
from sr.protocol import bicubic_score
from sr.weights import (DEFAULT_WEIGHTS, PHOTO_WEIGHTS, blended_checkpoint, default_weights, load_choice, named_choice,
                        resolve_weights, shipped_names)

ROOT = Path(__file__).resolve().parent.parent
OUT_MD, OUT_JSON = ROOT / "experiments" / "field.md", ROOT / "experiments" / "field.json"
FIGURES = ROOT / "experiments" / "figures"
SCALE, SET = 4, "BSDS100"
DENOISE = (0.5,)  # blend strengths shown beside the two ends (0: srresnet_x4, 1: real_srresnet_x4)
FAST = "real_fsrcnn_x4"  # the fast photo model: its column "by file" is what --weights real_fsrcnn_x4 runs per file
PEERS = {"x4plus": "RealESRGAN_x4plus.fp16.safetensors", "animevideov3": "realesr-animevideov3-x4.fp16.safetensors"}
FOLIAGE = ("148026", (16, 40, 144, 232))  # the photo and crop (top, left, bottom, right; HR px) of the figures
CACHE_VERSION = "fp32-harm"  # scores of other settings (bf16, no harm column) are not reused


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def shipped_x4() -> list[str]:
    return [n for n in shipped_names() if n.endswith(f"_x{SCALE}")]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=0, help="the first N images of BSDS100 (default 0: all)")
    p.add_argument("--kinds", nargs="+", type=check_kind, default=[*FIELD_KINDS, *HEAVY_KINDS])
    p.add_argument("--models", nargs="+", help="shipped names (default: every shipped x4 model)")
    p.add_argument("--weights", nargs="*", default=[], type=Path, help="more checkpoints to score beside them")
    p.add_argument("--name", nargs="*", default=[], help="their names in the table (default: the file's stem)")
    p.add_argument("--no-denoise", action="store_true", help="leave out the --denoise blend columns")
    p.add_argument("--peers", type=Path, help="folder of the Real-ESRGAN peer models (default: peers/ beside the data root)")
    p.add_argument("--peer-kinds", nargs="+", type=check_kind, default=["clean", *HEAVY_KINDS],
                   help="the kinds the peers are scored on (default: clean and the heavy kinds; x4plus takes seconds an image)")
    p.add_argument("--peer-images", type=int, default=0, help="score the peers on the first N images only (default 0: all)")
    p.add_argument("--no-figures", action="store_true", help="do not write the crop figures")
    add_data_root(p, "BSDS100/")
    p.add_argument("--out", type=Path, default=OUT_MD, help=f"the table (default {OUT_MD.relative_to(ROOT)}; JSON beside it)")
    return p.parse_args(argv)


def gather_models(args, root: Path, work: Path) -> tuple[dict[str, Path], list[str]]:
    """name -> weights file of every column, and the names of the peers among them."""

    # What the picker chooses between is always scored, so the default column can be read off.
    names = dict.fromkeys([*(args.models or shipped_x4()), DEFAULT_WEIGHTS, PHOTO_WEIGHTS, FAST])
    models: dict[str, Path] = {n: resolve_weights(n) for n in names}
    for i, path in enumerate(args.weights):
        models[args.name[i] if i < len(args.name) else path.stem] = path
    if not args.no_denoise:
        clean, photo = load_checkpoint(resolve_weights(DEFAULT_WEIGHTS)), load_checkpoint(resolve_weights(PHOTO_WEIGHTS))
        for s in DENOISE:
            blended = work / f"denoise_{s:g}.pth"
            save_checkpoint(blended, blended_checkpoint(clean, photo, s))
            models[f"--denoise {s:g}"] = blended
    peers_dir = args.peers or root.parent / "peers"
    peers = [name for name, file in PEERS.items() if (peers_dir / file).is_file()]
    if not peers:
        print(f"no peer models in {peers_dir}: their columns are left out")
    models.update({name: peers_dir / PEERS[name] for name in peers})
    return models, peers


def main(argv=None) -> dict:
    args = parse_args(argv)
    root = data_root(args.data_root)
    files = list_images(root / SET)
    files = files[: args.images] if args.images else files
    work = Path(tempfile.mkdtemp(prefix="field_"))
    models, peers = gather_models(args, root, work)
    json_path = args.out.with_suffix(".json")
    cache = json.loads(json_path.read_text()) if json_path.exists() else {}
    scores: dict = cache.get("scores", {})  # sha:version -> kind -> image -> {psnr, harm, seconds}
    upscalers: dict[str, Upscaler] = {}
    keys = {name: f"{sha256(weights)}:{CACHE_VERSION}" for name, weights in models.items()}  # files may change under a long run
    blends, details, passes = set(), {}, {}  # the picker's blends, added as files call for them: pulls toward bicubic, passes
    started = time.perf_counter()
    per_kind: dict[str, dict[str, list[dict]]] = {}
    picks: dict[str, dict[str, int]] = {}
    for kind in args.kinds:
        rows = per_kind.setdefault(kind, {})
        for index, path in enumerate(files):
            hr = mod_crop(load_rgb(path), SCALE)
            saved = save_field_lr(hr, SCALE, kind, work / f"{path.stem}_{kind.replace(':', '').replace('+', '_')}")
            lr = np.array(Image.open(saved).convert("RGB"))
            bicubic = bicubic_score(lr, hr, SCALE)
            rows.setdefault("bicubic", []).append({"psnr": bicubic.scores["psnr"], "harm": 0.0})
            images = {"bicubic": bicubic.image}
            figure = not args.no_figures and kind in HEAVY_KINDS and path.stem == FOLIAGE[0]
            if figure and args.peer_images and index >= args.peer_images:
                raise SystemExit(f"--peer-images {args.peer_images} leaves out {FOLIAGE[0]}, the figures' photo (image {index + 1})")
            choices = {"default": default_weights(saved), "fast": named_choice(FAST, saved)}
            picked = {choice.label for choice in choices.values()}
            for choice in choices.values():
                if choice.label not in models:  # a blend made for this file's quality: scored like a column
                    blends.add(choice.label)
                    models[choice.label] = work / f"{choice.label.replace(' ', '_')}.pth"
                    save_checkpoint(models[choice.label], load_choice(choice))
                    details[choice.label] = choice.detail  # the pull toward bicubic and the passes are no part of the weights
                    passes[choice.label] = choice.passes
                    keys[choice.label] = (f"{sha256(models[choice.label])}:{CACHE_VERSION}:detail {choice.detail:g}"
                                          + (f":passes {choice.passes}" if choice.passes != 1 else ""))
            for name, weights in models.items():
                peer_skipped = name in peers and (kind not in args.peer_kinds or (args.peer_images and index >= args.peer_images))
                if (name in blends and name not in picked) or peer_skipped:
                    continue  # a blend is scored only on the files it was picked for; peers on their kinds and images
                cached = scores.setdefault(keys[name], {}).setdefault(kind, {})
                if path.stem not in cached or figure:
                    if name not in upscalers:
                        upscalers[name] = Upscaler.load(weights, amp=False)
                        upscalers[name].detail = details.get(name, 1.0)
                        if passes.get(name, 1) != 1:
                            upscalers[name].net = SelfEnsemble(upscalers[name].net, passes[name])
                    t = time.perf_counter()
                    scored = upscalers[name].score(lr, hr)
                    seconds = time.perf_counter() - t
                    images[name] = scored.image
                    harm = harmed_share(*(torch.from_numpy(im.transpose(2, 0, 1)[None] / 255.0) for im in
                                          (scored.image, bicubic.image, hr[:scored.image.shape[0], :scored.image.shape[1]])),
                                        crop_border=SCALE)
                    cached[path.stem] = {"psnr": scored.scores["psnr"], "harm": harm, "seconds": seconds}
                rows.setdefault(name, []).append(cached[path.stem])
            for column, choice in choices.items():
                rows.setdefault(column, []).append(rows[choice.label][-1])
            label = choices["default"].label
            picks.setdefault(kind, {}).setdefault(label, 0)
            picks[kind][label] += 1
            if figure:
                write_figure(kind, images, hr, label, peers)
        print(f"{kind}: done ({time.perf_counter() - started:.0f} s)", flush=True)
        # Saved after every kind: an interrupted run keeps what it scored, and a rerun starts from there.
        atomic_write_text(json_path, json.dumps({**cache, "scores": scores}, indent=1) + "\n")
    table = render(per_kind, picks, [m for m in models if m not in blends], len(files), peers, args.peer_images)
    print(table)
    means = {k: {m: {f: float(np.mean([r[f] for r in v])) for f in ("psnr", "harm")} for m, v in rows.items()}
             for k, rows in per_kind.items()}
    atomic_write_text(json_path, json.dumps({"set": SET, "images": len(files), "cpu": describe_cpu(), "scores": scores,
                                             "means": means, "picks": picks}, indent=1) + "\n")
    atomic_write_text(args.out, table + "\n")
    return per_kind


def write_figure(kind: str, images: dict[str, np.ndarray], hr: np.ndarray, default: str, peers: list[str]) -> None:
    top, left, bottom, right = FOLIAGE[1]

    def cut(img: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(img[top:bottom, left:right], 2, axis=0), 2, axis=1)

    panels = [(cut(images["bicubic"]), "bicubic"), (cut(images[default]), f"the default\n({default})")]
    panels += [(cut(images[p]), f"peer: Real-ESRGAN\n{p}") for p in peers]
    panels.append((cut(hr), "original"))
    out = FIGURES / f"field_{kind.replace(':', '').replace('+', '_')}_x{SCALE}.png"
    save_image(out, side_by_side(panels))
    print(f"wrote {out.relative_to(ROOT)}")


def render(per_kind: dict, picks: dict, models: list[str], n: int, peers: list[str], peer_images: int = 0) -> str:
    shown = [m for m in models if m not in peers]
    head = ["kind", "bicubic (dB)", *(f"`{m}`" if not m.startswith("--") else m for m in shown), f"`{FAST}` by file",
            "the default picks",
            *(f"peer `{p}`" for p in peers)]
    lines = [f"BSDS100 x{SCALE}, first {n} images, PSNR on Y (fp32): gain over bicubic in dB / share of 32x32 blocks "
             "harmed (over 0.5 dB worse than bicubic there); each LR read from the file a user would have (JPEG/WebP "
             "kinds in their own container, others PNG). Peers: PSNR gain / harmed / seconds an image"
             + (f", on the first {peer_images} images only" if peer_images else "") + ".", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(rows: list[dict], base: float, seconds: bool = False) -> str:
        text = f"{np.mean([r['psnr'] for r in rows]) - base:+.2f} / {100 * np.mean([r['harm'] for r in rows]):.1f}%"
        return text + (f" / {np.mean([r['seconds'] for r in rows]):.1f} s" if seconds else "")

    for kind, rows in per_kind.items():
        base = float(np.mean([r["psnr"] for r in rows["bicubic"]]))
        cells = [kind, f"{base:.2f}"] + [cell(rows[m], base) for m in shown] + [cell(rows["fast"], base)]
        chosen = ", ".join(f"{name} {count}" for name, count in sorted(picks[kind].items()))
        cells.append(f"{cell(rows['default'], base)} ({chosen})")
        # Peers may be scored on the first images only: their gain is over bicubic on those images.
        cells += [cell(rows[p], float(np.mean([r["psnr"] for r in rows["bicubic"][:len(rows[p])]])), seconds=True)
                  if p in rows else "" for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
