"""Evaluate a checkpoint (or plain bicubic) under the standard SR protocol, or enlarge images.

    python eval.py --weights runs/srcnn_mse_x3/best.pth --image butterfly.png   # vs ground truth
    python eval.py --weights runs/srcnn_mse_x3/best.pth --image photo.jpg --upscale
    python eval.py --weights runs/srcnn_mse_x3/best.pth --dataset Set5
    python eval.py --bicubic --scale 3 --dataset Set5

Protocol: HR cropped to a multiple of the scale, MATLAB bicubic LR rounded to 8 bits,
PSNR/SSIM on the Y channel (BT.601) with a border of `scale` pixels left out, per image
then averaged. Models with colour output are also scored on RGB (labelled).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.cli import ArgumentParser, positive_int, run, scale_type
from sr.datasets import data_root, resolve_images
from sr.degradation import downscale, mod_crop, upscale
from sr.distributed import select_device
from sr.errors import UserError
from sr.evaluation import bicubic_score, score, super_resolve, to_rgb_image
from sr.figures import side_by_side
from sr.images import load_rgb, save_image

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Inputs larger than this are tiled unless --tile says otherwise: a 12-megapixel photo
# enlarged x4 untiled would need tens of GB for SRResNet's full-resolution activations.
AUTO_TILE, AUTO_TILE_ABOVE = 256, 512 * 512
DEFAULT_WEIGHTS = "srresnet_x4"  # for --upscale without --weights: the strongest shipped model on photos


def parse_args(argv: list[str] | None = None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="a checkpoint file, or a shipped name such as fsrcnn_x3 (see weights/)")
    src.add_argument("--bicubic", action="store_true", help="evaluate plain bicubic instead of a model (needs --scale)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", type=Path, help="one image: ground truth to score against, or with --upscale the input")
    what.add_argument("--dataset", help="a set name under the data root (Set5, Set14, BSDS100, ...) or a folder of images")
    p.add_argument("--upscale", action="store_true", help="with --image: enlarge it, no ground truth")
    p.add_argument("--scale", type=scale_type, help="with --bicubic; with --weights it must match the checkpoint")
    p.add_argument("--output", type=Path, help="--upscale: the enlarged image (default: <stem>_<arch>_x<scale>.png)")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="--image: where the result PNGs go (default: .)")
    p.add_argument("--json", type=Path, help="also write the scores as JSON here")
    p.add_argument("--data-root", help="folder holding Set5/, Set14/, ... (default: $SR_DATA, else ./data)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (faster; scores may move in the last digit)")
    p.add_argument("--tile", type=positive_int, help="process the input in tiles of N pixels: bounded memory, the same "
                   f"result within 1/255 (default: {AUTO_TILE} for inputs over {int(AUTO_TILE_ABOVE ** 0.5)}x"
                   f"{int(AUTO_TILE_ABOVE ** 0.5)} pixels, none otherwise)")
    return p.parse_args(argv)


def resolve_weights(spec: str) -> Path:
    """A checkpoint path, or the name of a shipped one (``fsrcnn_x3`` -> weights/fsrcnn_x3.pth)."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = WEIGHTS_DIR / (spec if spec.endswith(".pth") else f"{spec}.pth")
    if os.sep not in spec and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pth"))
    known = f" (shipped: {', '.join(names)})" if names else ""
    raise UserError(f"{spec}: no such checkpoint file or shipped weights{known}")


class Model:
    """A checkpoint's network with what it needs to know about itself."""

    def __init__(self, path: Path, device: torch.device):
        state = load_checkpoint(path)
        self.path, self.arch, self.scale = path, state["arch"], int(state["scale"])
        self.layout, self.color = state["layout"], state["color"]
        self.net = model_from_checkpoint(state, path).to(device)
        if device.type == "cpu":  # as in training: oneDNN convolutions are faster in NHWC
            self.net.to(memory_format=torch.channels_last)

    def __call__(self, lr: np.ndarray, device, amp: bool, tile: int | None) -> torch.Tensor:
        if tile is None and lr.shape[0] * lr.shape[1] > AUTO_TILE_ABOVE:
            tile = AUTO_TILE
        return super_resolve(self.net, lr, self.scale, self.layout, self.color, device, amp, tile)


def _fmt(scores: dict) -> str:
    text = f"{scores['psnr']:.2f} dB / {scores['ssim']:.4f}"
    if "psnr_rgb" in scores:
        text += f"  (RGB {scores['psnr_rgb']:.2f} / {scores['ssim_rgb']:.4f})"
    return text


def _ground_truth(path: Path, scale: int) -> np.ndarray:
    hr = mod_crop(load_rgb(path), scale)
    if min(hr.shape[:2]) < 2 * scale + 11:
        raise UserError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is too small to evaluate at x{scale} "
                        f"(needs at least {2 * scale + 11} px a side; use --upscale to just enlarge it)")
    return hr


def evaluate_one(hr: np.ndarray, scale: int, model: Model | None, args, device):
    """Degrade ``hr``, reconstruct with bicubic (and the model); return images and scores."""
    lr = downscale(hr, scale)
    bicubic, bic_scores = bicubic_score(lr, hr, scale)
    if model is None:
        return bicubic, bic_scores, None, None
    pred = model(lr, device, args.amp, args.tile)
    return bicubic, bic_scores, to_rgb_image(pred, bicubic), score(pred, hr, scale)


def image_mode(args, model: Model | None, scale: int, device) -> dict:
    hr = _ground_truth(args.image, scale)
    bicubic, bic, result, scores = evaluate_one(hr, scale, model, args, device)
    stem, name = args.image.stem, model.arch if model else "bicubic"
    out = args.out_dir
    save_image(out / f"{stem}_bicubic_x{scale}.png", bicubic)
    print(f"{args.image.name} x{scale} (PSNR/SSIM on Y, crop {scale})")
    print(f"  bicubic  {_fmt(bic)}")
    panels = [(bicubic, f"bicubic x{scale}\n{bic['psnr']:.2f} dB / {bic['ssim']:.4f}")]
    if model:
        save_image(out / f"{stem}_{name}_x{scale}.png", result)
        print(f"  {name:<8} {_fmt(scores)}")
        panels.append((result, f"{name} x{scale}\n{scores['psnr']:.2f} dB / {scores['ssim']:.4f}"))
    panels.append((hr, "ground truth\nPSNR / SSIM on Y"))
    compare = out / f"{stem}_compare_x{scale}.png"
    save_image(compare, side_by_side(panels))
    print(f"wrote {out / f'{stem}_bicubic_x{scale}.png'}" + (f", {out / f'{stem}_{name}_x{scale}.png'}" if model else "") + f", {compare}")
    row = {"image": stem, "bicubic": bic, **({"model": scores} if model else {})}
    return _summary([row], model)


def upscale_mode(args, model: Model | None, device) -> None:
    lr = load_rgb(args.image)
    if model is None:
        result, name, scale = upscale(lr, args.scale), "bicubic", args.scale
    else:
        scale, name = model.scale, model.arch
        pred = model(lr, device, args.amp, args.tile)
        result = to_rgb_image(pred, upscale(lr, scale) if pred.shape[0] == 1 else None)
    output = args.output or Path(f"{args.image.stem}_{name}_x{scale}.png")
    save_image(output, result)
    print(f"wrote {output}: {lr.shape[1]}x{lr.shape[0]} -> {result.shape[1]}x{result.shape[0]} ({name} x{scale})")


def dataset_mode(args, model: Model | None, scale: int, device) -> dict:
    name, files = resolve_images(args.dataset, data_root(args.data_root))
    label = model.arch if model else "bicubic"
    rows = []
    for path in files:
        _, bic, _, scores = evaluate_one(_ground_truth(path, scale), scale, model, args, device)
        rows.append({"image": path.stem, "bicubic": bic, **({"model": scores} if model else {})})
    rgb = model is not None and "psnr_rgb" in rows[0]["model"]
    print(f"{name} x{scale}: PSNR (dB) / SSIM on Y, border {scale} px cropped"
          + (f"; {label} also on RGB" if rgb else "") + (f"; weights {model.path}" if model else ""))
    width = max(len(r["image"]) for r in rows + [{"image": "image"}]) + 2
    header = f"{'image':<{width}}{'bicubic':<20}" + (f"{label:<20}" if model else "") + ("RGB" if rgb else "")
    print(header)
    summary = _summary(rows, model)
    for r in rows + [{"image": "mean", "bicubic": summary["bicubic_mean"], "model": summary.get("model_mean")}]:
        line = f"{r['image']:<{width}}{r['bicubic']['psnr']:>6.2f} / {r['bicubic']['ssim']:.4f}     "
        if model:
            m = r["model"]
            line += f"{m['psnr']:>6.2f} / {m['ssim']:.4f}     " + (f"{m['psnr_rgb']:>6.2f} / {m['ssim_rgb']:.4f}" if rgb else "")
        print(line.rstrip())
    return summary


def _mean(rows: list[dict], key: str) -> dict:
    fields = rows[0][key].keys()
    return {f: float(np.mean([r[key][f] for r in rows])) for f in fields}


def _summary(rows: list[dict], model: Model | None) -> dict:
    summary = {"rows": rows, "bicubic_mean": _mean(rows, "bicubic")}
    if model:
        summary["model_mean"] = _mean(rows, "model")
    return summary


def write_json(path: Path, summary: dict, rows_source: str, model: Model | None, scale: int) -> None:
    main = summary.get("model_mean", summary["bicubic_mean"])
    bic = summary["bicubic_mean"]
    doc = {"psnr": main["psnr"], "ssim": main["ssim"], "bicubic_psnr": bic["psnr"], "bicubic_ssim": bic["ssim"],
           "scale": scale, "model": model.arch if model else "bicubic", "weights": str(model.path) if model else None,
           "source": rows_source, "protocol": f"Y (BT.601), border {scale} px cropped, MATLAB bicubic degradation, 8-bit"}
    for k in ("psnr_rgb", "ssim_rgb"):
        if k in main:
            doc[k] = main[k]
    doc["images"] = summary["rows"]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def main(args) -> dict | None:
    if args.upscale and args.image is None:
        raise UserError("--upscale works on one --image")
    device = select_device(args.device)
    model = None
    if args.bicubic:
        if args.scale is None:
            raise UserError("--bicubic needs --scale")
    else:
        weights = args.weights
        if weights is None:
            if not args.upscale:
                raise UserError("give --weights CHECKPOINT (or a shipped name), or --bicubic --scale N")
            weights = DEFAULT_WEIGHTS
        model = Model(resolve_weights(weights), device)
        if args.scale is not None and args.scale != model.scale:
            raise UserError(f"--scale {args.scale} contradicts the checkpoint, which is x{model.scale}")
    scale = model.scale if model else args.scale
    if args.upscale:
        upscale_mode(args, model, device)
        return None
    summary = image_mode(args, model, scale, device) if args.image else dataset_mode(args, model, scale, device)
    if args.json:
        write_json(args.json, summary, str(args.image or args.dataset), model, scale)
    return summary


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
