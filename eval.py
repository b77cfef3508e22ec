"""Score a checkpoint (or plain bicubic) under the standard SR protocol, or enlarge photos.

    python eval.py --weights fsrcnn_x3 --dataset Set5                     # scores on a benchmark set
    python eval.py --bicubic --scale 3 --dataset Set5 --protocol matlab
    python eval.py --weights runs/srcnn_mse_x3/best.pth --image butterfly.png   # vs ground truth, with pictures
    python eval.py --weights srresnet_x4 --upscale photos/ 'more/*.jpg' --out-dir big/
    python eval.py --weights fsrcnn_x3.onnx --upscale photo.png --outscale 2.5 --format webp --quality 90

Protocol: HR cropped to a multiple of the scale, MATLAB bicubic LR rounded to 8 bits
(then JPEG at --jpeg Q if given), PSNR/SSIM on the Y channel (BT.601; unrounded under
--protocol basicsr, rounded to integers as MATLAB's rgb2ycbcr under matlab) with a border of
`scale` pixels left out, per image then averaged. Models with colour output are also
scored on RGB (labelled).

Enlarging keeps what the input is: alpha (enlarged by bicubic unless --alpha-upsampler
model), grey, 16-bit grey (computed from the 16-bit values), EXIF orientation and ICC profile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from sr.cli import ArgumentParser, factor_above_one, fraction, percent, positive_int, run, scale_type
from sr.data.field import check_kind
from sr.data.images import find_images, save_image
from sr.data.sets import data_root, resolve_images
from sr.distributed import available_cores, select_device
from sr.enlarge import ALPHA_UPSAMPLERS, enlarge, faster_note
from sr.errors import UserError, failure_line, quoted
from sr.evaluation import evaluate_image, summarise, write_scores
from sr.figures import side_by_side
from sr.models.self_ensemble import PASSES, SelfEnsemble
from sr.outputs import check_fits, check_writable, output_for, refuse_collisions, worth_reading
from sr.photo import read_photo
from sr.photo_write import PIL_FORMATS, write_image
from sr.protocol import PROTOCOLS
from sr.upscaler import AUTO_TILE, AUTO_TILE_ABOVE, Upscaler
from sr.weights import DEFAULT_WEIGHTS, HEAVY_ANCHORS, PHOTO_MAX_QUALITY, PHOTO_WEIGHTS, Choice, default_weights, named_choice

# The fast model of each kind, named before an enlargement that would take longer than LONG_RUN seconds.
FASTER = {DEFAULT_WEIGHTS: "fsrcnn_x4", PHOTO_WEIGHTS: "real_fsrcnn_x4"}
LONG_RUN = 60


def parse_args(argv: list[str] | None = None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="a shipped name such as fsrcnn_x3 (see weights/), one of our checkpoints (.safetensors, "
                     ".pth), an ONNX export (.onnx, run by onnxruntime), or a community model spandrel detects (.pth, "
                     f".safetensors, ...; the [zoo] extra). --upscale without it: {PHOTO_WEIGHTS} for what went through "
                     f"lossy compression (JPEGs of quality {PHOTO_MAX_QUALITY} or lower, lossy WebP, screenshots of such), "
                     f"{DEFAULT_WEIGHTS} for the rest, read from each file")
    src.add_argument("--bicubic", action="store_true", help="plain bicubic instead of a model (needs --scale)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--image", action="append", metavar="PATH",
                      help="an image file, a folder or a glob pattern (may repeat): ground truth to score against, "
                           "or with --upscale inputs to enlarge")
    what.add_argument("--dataset", help="a set name under the data root (Set5, Set14, BSDS100, ...) or a folder of images")

    big = p.add_argument_group("enlarging (no ground truth)")
    big.add_argument("--upscale", nargs="*", metavar="PATH",
                     help="enlarge these files, folders or glob patterns (and any --image); the model loads once, "
                          "a failed image is reported and skipped, and the exit code is 2 if any failed")
    big.add_argument("--output", type=Path, help="the enlarged image, when there is one input "
                     "(default: <out-dir>/<stem>_<model>_x<factor>.<ext>, <model> being a shipped name such as "
                     "real_srresnet or the architecture)")
    big.add_argument("--out-dir", type=Path, default=Path("."), help="where results go (default: .)")
    big.add_argument("--format", choices=sorted(PIL_FORMATS), help="output format (default: the --output extension, "
                     "else the input's own when it is png, jpg, webp or tiff, else png)")
    big.add_argument("--quality", type=percent, help="jpg and webp quality, 1-100 (default: 95 for jpg, 90 for webp)")
    big.add_argument("--outscale", type=factor_above_one, metavar="F",
                     help="final factor, any number > 1: the model's scale, then MATLAB bicubic to F")
    big.add_argument("--alpha-upsampler", choices=ALPHA_UPSAMPLERS, default="bicubic",
                     help="how transparency is enlarged: bicubic (default; safe on soft mattes) or the model "
                          "(sharper hard cut-out edges, but it was trained on photos, not mattes)")

    scoring = p.add_argument_group("scoring")
    scoring.add_argument("--scale", type=scale_type, help="with --bicubic; with --weights it must match the checkpoint")
    scoring.add_argument("--protocol", choices=PROTOCOLS, default="basicsr",
                         help="Y as BasicSR takes it, unrounded (default), or as MATLAB's rgb2ycbcr on uint8, rounded")
    scoring.add_argument("--jpeg", type=percent, metavar="Q",
                         help="degrade the LR further by a Pillow JPEG save at quality Q (after the bicubic downscaling)")
    scoring.add_argument("--degrade", type=_field_kind, metavar="KIND",
                         help="make the LR as a kind of real file instead: jpeg:Q, webp:Q, resized, resaved, noisy or "
                              "clean (docs/photos.md, 'The field benchmark', says exactly how each is made)")
    scoring.add_argument("--json", type=Path, help="also write the scores as JSON here")
    scoring.add_argument("--data-root", help="folder holding Set5/, Set14/, ... (default: $SR_DATA, else ./data)")

    compute = p.add_argument_group("computing")
    compute.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    compute.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                         help="bf16 autocast. Enlarging: on by default where the device computes bf16 natively "
                              "(AMX/AVX512-BF16 CPU, bf16 GPU), off elsewhere. Scoring: off unless --amp is given, "
                              "so a measurement is exact fp32 (bf16 may move scores in the second decimal)")
    src.add_argument("--denoise", type=fraction, metavar="S",
                      help=f"instead of --weights: {DEFAULT_WEIGHTS} and {PHOTO_WEIGHTS} blended weight by weight, 0 the "
                           "clean model, 1 the photo model (Real-ESRGAN's -dn); lower keeps more fine texture and more "
                           "compression damage")
    big.add_argument("--heavy", type=fraction, metavar="S",
                     help=f"how far a photo model ({', '.join(HEAVY_ANCHORS)}) is blended toward its heavy-compression "
                          "anchor, 0 (not at all) to 1 (default: from the quality read from each file, the lower the "
                          "more, by a ramp chosen on validation photos; docs/photos.md)")
    big.add_argument("--detail", type=fraction, metavar="D", help="share of a photo model's difference from bicubic kept, 1 "
                     "as it is (default for a lossy file, chosen on validation: "
                     + ", ".join(f"{a.detail:g} {w}" for w, a in HEAVY_ANCHORS.items()) + ")")
    compute.add_argument("--passes", type=int, choices=PASSES, metavar="N",
                         help="self-ensemble: average the model over N flips and rotations of its input, each turned "
                              f"back ({', '.join(map(str, PASSES))}; N times the time; default 1, and for a lossy file "
                              "enlarged by a photo model the number chosen on validation photos: "
                              + ", ".join(f"{a.passes} {w}" for w, a in HEAVY_ANCHORS.items()) + ")")
    compute.add_argument("--tta", action="store_true",
                         help="--passes 8, every flip and rotation (EDSR's '+'; scores so made are reported apart, never "
                              "as a model's single-pass figure)")
    compute.add_argument("--tile", type=positive_int, help="run the whole network on tiles of N model-input pixels (default: "
                         "enlarging sizes tiles by the memory the model's feature maps take, a small image in one; scoring "
                         f"uses {AUTO_TILE} over {int(AUTO_TILE_ABOVE ** 0.5)}x{int(AUTO_TILE_ABOVE ** 0.5)} pixels)")
    compute.add_argument("--threads", type=positive_int, default=available_cores(),
                         help=f"CPU threads (default: {available_cores()} here: $OMP_NUM_THREADS when it is set, else "
                              "every core this process may use)")
    args = p.parse_args(argv)
    if args.tta:
        if args.passes not in (None, 8):
            p.error(f"--tta is --passes 8; it contradicts --passes {args.passes}")
        args.passes = 8
    return args


def _field_kind(text: str) -> str:
    try:
        return check_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load_upscaler(args, device, amp: bool | None, enlarging: bool, choice: Choice | None = None) -> Upscaler | None:
    """The model the flags ask for (what the picker chose for a file when --weights is not given, or
    a named photo model blended by its file); None for --bicubic when scoring (bicubic is always scored)."""
    if args.bicubic:
        if args.scale is None:
            raise UserError("--bicubic needs --scale")
        return Upscaler.bicubic(args.scale) if enlarging else None
    if args.weights is None and args.denoise is None and not enlarging:
        raise UserError("give --weights CHECKPOINT (or a shipped name), or --bicubic --scale N")
    if args.denoise is not None:
        if args.weights is not None:
            raise UserError(f"--denoise blends {DEFAULT_WEIGHTS} and {PHOTO_WEIGHTS}; leave out --weights and --bicubic")
        upscaler = Upscaler.blend(args.denoise, device, amp, args.tile)
    else:
        upscaler = Upscaler.chosen(choice or Choice(args.weights or DEFAULT_WEIGHTS, ""), device, amp, args.tile)
    if args.scale is not None and args.scale != upscaler.scale:
        raise UserError(f"--scale {args.scale} contradicts the checkpoint, which is x{upscaler.scale}")
    if args.passes and upscaler.passes != args.passes:  # a choice carries its own; --denoise and scoring take them here
        upscaler.net = SelfEnsemble(upscaler.net, args.passes)
    return upscaler


def _advise(src: Path, upscaler: Upscaler, photo, amp: bool | None, left: float) -> None:
    """Over LONG_RUN seconds left, one line names the faster model of the enlargement's kind; it goes on as asked."""
    if left > LONG_RUN and upscaler.name in FASTER:
        tqdm.write(f"{quoted(src)}: {faster_note(upscaler, FASTER[upscaler.name], photo, amp, left)}", file=sys.stderr)


def upscale_mode(args, device) -> list[Path]:
    if args.json:
        raise UserError("--json records scores; --upscale has none (score with --image or --dataset)")
    if args.dataset:
        raise UserError("--dataset is for scoring; give the images to enlarge to --upscale")
    if args.jpeg is not None or args.degrade is not None:
        raise UserError(f"{'--jpeg' if args.jpeg is not None else '--degrade'} degrades the LR made from a ground truth; "
                        "it does not apply to --upscale")
    files = find_images([*(args.image or []), *args.upscale])
    if not files:
        raise UserError("--upscale needs inputs: files, folders or glob patterns (or --image)")
    if args.output and len(files) > 1:
        raise UserError(f"--output names one file, but the inputs hold {len(files)} images; use --out-dir")
    # Without --weights each input gets the shipped model for its kind (sr.weights.default_weights);
    # a named photo model follows each file's quality too. Each model loads once.
    check_writable(args.output.parent if args.output else args.out_dir)
    picks = args.weights is None and args.denoise is None and not args.bicubic
    follows = args.weights in HEAVY_ANCHORS and args.denoise is None and not args.tta
    reads = {src: (picks or follows) and worth_reading(src, args.weights or DEFAULT_WEIGHTS, args.outscale) for src in files}
    chosen = {src: Choice(None, "too large to read") if not reads[src] else default_weights(src, heavy=args.heavy, detail=args.detail,
                                                                                                passes=args.passes)
              if picks else named_choice(args.weights, src, heavy=args.heavy, detail=args.detail, passes=args.passes)
              for src in files}
    upscalers = {c.label: load_upscaler(args, device, args.amp, enlarging=True, choice=c if c.weights else None)
                 for c in chosen.values()}
    jobs = []
    for src in files:
        upscaler = upscalers[chosen[src].label]
        jobs.append((src, upscaler, *output_for(src, args.output, args.out_dir, args.format,
                                                upscaler.output_tag(args.outscale or upscaler.scale))))
    refuse_collisions([(src, [dst]) for src, _, dst, _ in jobs], "enlarge")

    for label, upscaler in upscalers.items():
        mine = [src for src in files if chosen[src].label == label]
        reasons = sorted({chosen[src].reason for src in mine})
        why = ""
        if picks:
            why = f" ({'; '.join(reasons)}: the default for such inputs; --weights picks one model for all)"
        elif follows:
            why = f" ({'; '.join(reasons)}; --heavy 0 --detail 1 --passes 1 runs {args.weights} as it is)" if chosen[mine[0]].label != args.weights else ""
        print(f"{upscaler.describe()}; {len(mine)} image{'s' if len(mine) > 1 else ''}, "
              f"x{args.outscale or upscaler.scale:g}{why}", flush=True)
    written, failed = [], 0
    for src, upscaler, dst, fmt in tqdm(jobs, desc="enlarging", unit="image", file=sys.stderr, dynamic_ncols=True,
                                        disable=len(jobs) == 1):
        # One image at a time, tile by tile (sr.enlarge). Whatever goes wrong with one image (too large,
        # a broken file, memory, a failed write, a bug) is one line, and the batch goes on.
        start = time.perf_counter()
        try:
            check_fits(src, upscaler.scale, args.outscale, fmt)
            photo = read_photo(src, compact=True)
            image, kind = enlarge(upscaler, photo, fmt, args.outscale, args.alpha_upsampler, progress=src.name,
                                  estimate=lambda left: _advise(src, upscaler, photo, args.amp, left))
            notes = photo.notes + list(kind.notes) + write_image(dst, image, photo, fmt, args.quality)
            (h, w), (big_w, big_h) = photo.size, image.size
        except Exception as exc:  # noqa: BLE001 (MemoryError, decoder errors, anything: reported, then the next image)
            failed += 1
            tqdm.write(f"skipped {failure_line(src, exc)}", file=sys.stderr)
            continue
        finally:
            image = photo = None  # this image's arrays go before the next one is read
        for note in notes:
            tqdm.write(f"{quoted(src)}: {note}", file=sys.stderr)
        tqdm.write(f"wrote {quoted(dst)}: {w}x{h} -> {big_w}x{big_h} in {time.perf_counter() - start:.1f} s")
        written.append(dst)
    if failed:
        raise UserError(f"{failed} of {len(files)} images failed")
    return written


# ---------------------------------------------------------------------- scoring


def _fmt(scores: dict) -> str:
    text = f"{scores['psnr']:.2f} dB / {scores['ssim']:.4f}"
    if "psnr_rgb" in scores:
        text += f"  (RGB {scores['psnr_rgb']:.2f} / {scores['ssim_rgb']:.4f})"
    return text


def _lossy(args) -> int | str | None:
    """What the LR goes through after the protocol's downscaling: --jpeg's quality or --degrade's kind."""
    if args.jpeg is not None and args.degrade is not None:
        raise UserError("--jpeg Q is --degrade jpeg:Q; give one of them")
    return args.degrade if args.degrade is not None else args.jpeg


def _setting(args, scale: int) -> str:
    """What was measured, for the printed titles."""
    text = f"PSNR (dB) / SSIM on Y{' rounded as MATLAB' if args.protocol == 'matlab' else ''}, border {scale} px cropped"
    return (text + (f", LR JPEG q{args.jpeg}" if args.jpeg is not None else "") + (f", LR {args.degrade}" if args.degrade else "")
            + (", self-ensemble x8 (+)" if args.passes == 8 else f", self-ensemble of {args.passes} passes" if args.passes else ""))


def image_mode(args, upscaler: Upscaler | None, scale: int) -> dict:
    files = find_images(args.image)
    name = upscaler.arch if upscaler else "bicubic"
    kinds = ["bicubic", *([name] if upscaler else []), "compare"]
    refuse_collisions([(src, [args.out_dir / f"{src.stem}_{kind}_x{scale}.png" for kind in kinds]) for src in files],
                      "score", extra=args.json)
    evaluations = []
    for path in files:
        e = evaluate_image(path, scale, upscaler, args.protocol, _lossy(args))
        evaluations.append(e)
        stem, out, bic = path.stem, args.out_dir, e.bicubic.scores
        written = [out / f"{stem}_bicubic_x{scale}.png"]
        save_image(written[0], e.bicubic.image)
        print(f"{path.name} x{scale} ({_setting(args, scale)})")
        print(f"  bicubic  {_fmt(bic)}")
        panels = [(e.bicubic.image, f"bicubic x{scale}\n{bic['psnr']:.2f} dB / {bic['ssim']:.4f}")]
        if e.model:
            written.append(out / f"{stem}_{name}_x{scale}.png")
            save_image(written[-1], e.model.image)
            print(f"  {name:<8} {_fmt(e.model.scores)}")
            panels.append((e.model.image, f"{name} x{scale}\n{e.model.scores['psnr']:.2f} dB / {e.model.scores['ssim']:.4f}"))
        panels.append((e.hr, "ground truth\nPSNR / SSIM on Y"))
        written.append(out / f"{stem}_compare_x{scale}.png")
        save_image(written[-1], side_by_side(panels))
        print(f"wrote {', '.join(map(str, written))}")
    return summarise(evaluations)


def dataset_mode(args, upscaler: Upscaler | None, scale: int) -> dict:
    name, files = resolve_images(args.dataset, data_root(args.data_root))
    label = upscaler.arch if upscaler else "bicubic"
    summary = summarise([evaluate_image(path, scale, upscaler, args.protocol, _lossy(args)) for path in files])
    rows = summary["rows"]
    rgb = upscaler is not None and "psnr_rgb" in rows[0]["model"]
    precision = f"; {upscaler.precision.name}" if upscaler and upscaler.precision.enabled else ""
    print(f"{name} x{scale}: {_setting(args, scale)}" + (f"; {label} also on RGB" if rgb else "")
          + (f"; weights {upscaler.path}" if upscaler else "") + precision)
    width = max(len(r["image"]) for r in rows + [{"image": "image"}]) + 2
    print(f"{'image':<{width}}{'bicubic':<20}" + (f"{label:<20}" if upscaler else "") + ("RGB" if rgb else ""))
    for r in rows + [{"image": "mean", "bicubic": summary["bicubic_mean"], "model": summary.get("model_mean")}]:
        line = f"{r['image']:<{width}}{r['bicubic']['psnr']:>6.2f} / {r['bicubic']['ssim']:.4f}     "
        if upscaler:
            m = r["model"]
            line += f"{m['psnr']:>6.2f} / {m['ssim']:.4f}     " + (f"{m['psnr_rgb']:>6.2f} / {m['ssim_rgb']:.4f}" if rgb else "")
        print(line.rstrip())
    return summary


def main(args) -> dict | list[Path]:
    """Scores (a summary dict) for --dataset/--image; the written files for --upscale."""
    torch.set_num_threads(args.threads)  # before any model loads: onnxruntime takes the count when it does
    device = select_device(args.device)
    if (args.heavy, args.detail) != (None, None) and (args.upscale is None or args.denoise is not None or args.bicubic):
        raise UserError("--heavy and --detail shape a photo model's enlargement: --upscale, without --denoise or --bicubic")
    if args.passes and args.bicubic:
        raise UserError("--passes and --tta average a model over flips of its input; --bicubic runs none")
    if args.upscale is not None:
        return upscale_mode(args, device)
    if args.image is None and args.dataset is None:
        raise UserError("give --dataset, --image or --upscale (see --help)")
    # A measurement is exact fp32 unless --amp asks for bf16.
    upscaler = load_upscaler(args, device, bool(args.amp), enlarging=False)
    scale = upscaler.scale if upscaler else args.scale
    summary = image_mode(args, upscaler, scale) if args.image else dataset_mode(args, upscaler, scale)
    if args.json:
        write_scores(args.json, summary, scale=scale, upscaler=upscaler, source=args.dataset or ", ".join(args.image),
                     protocol=args.protocol, jpeg=args.jpeg, degrade=args.degrade, passes=args.passes or 1)
    return summary


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
