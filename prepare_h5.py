"""Pack LR/HR training patches and whole evaluation images into HDF5.

    python prepare_h5.py --scale 3                                 # T91 -> SRCNN/FSRCNN patches
    python prepare_h5.py --scale 4 --layout lr-hr --color rgb      # BSDS200 -> SRResNet/SRGAN patches

HR images are cropped to a multiple of the scale, LR is MATLAB bicubic rounded to 8 bits;
the "upsampled" layout stores that LR enlarged back by bicubic (what SRCNN reads), the
"lr-hr" layout stores the LR patch itself. Patches stream into chunked uint8 datasets.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sr.cli import ArgumentParser, add_data_root, add_scale, non_negative_int, positive_int, run
from sr.data.h5 import EvalWriter, PatchWriter
from sr.data.packing import PAPER_RESCALE, Packing, choose_images
from sr.data.sets import portable
from sr.data.degradation import downscale, mod_crop, model_input, to_planes, to_uint8
from sr.imresize import imresize
from sr.metrics import smallest_scored_side
from sr.errors import UserError, quoted
from sr.data.images import load_rgb
from sr.models import COLORS, LAYOUTS
from sr.data.patches import dihedral, patch_pairs

DEGRADATION = "matlab-bicubic-antialias, lr rounded to uint8"


def rescale_factor(text: str) -> float:
    """An argparse ``type``: a factor in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a factor in (0, 1], got {text!r}")
    return value


USAGE = """python prepare_h5.py --scale 3                              (T91 -> SRCNN/FSRCNN patches)
       python prepare_h5.py --scale 4 --layout lr-hr --color rgb   (BSDS200 -> SRResNet/SRGAN patches)
       python prepare_h5.py --scale N [flags below]"""


def parse_args(argv: list[str] | None = None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0], usage=USAGE)
    g = p.add_argument_group("what to pack")
    add_scale(g, required=True)
    g.add_argument("--layout", choices=LAYOUTS, default="upsampled",
                   help="upsampled: LR enlarged back to HR size (SRCNN, FSRCNN); lr-hr: LR and HR patches (fsrcnn-paper, SRResNet)")
    g.add_argument("--color", choices=tuple(COLORS), default="y", help="y: the Y channel of YCbCr; rgb: three channels")
    g.add_argument("--images", nargs="+", help="training images: set names under the data root, folders or files, "
                   "one or more (default: T91 for y, BSDS200 for rgb; 'T91 BSDS200' is the 291-image set of VDSR)")
    g.add_argument("--eval-images", help="validation images that pick a run's best epoch, likewise (default: images held "
                   "out of the training images, see --val-images; a test set such as Set5 is refused)")
    g.add_argument("--val-images", type=non_negative_int, help="how many training images to hold out for validation "
                   "when --eval-images is not given (default: 5%%, at least 2: 5 of T91, 10 of BSDS200)")
    g = p.add_argument_group("patches")
    g.add_argument("--patch-size", type=positive_int, help="HR patch side in pixels (default: 33 upsampled; "
                   "11 x scale lr-hr y; 25 x scale lr-hr rgb, i.e. 100 at x4)")
    g.add_argument("--stride", type=positive_int, help="HR pixels between patches (default: 14 upsampled; "
                   "5 x scale lr-hr y; 9 x scale lr-hr rgb)")
    g.add_argument("--augment", action="store_true", help="also store the 7 other flips/90-degree rotations of every patch")
    g.add_argument("--rescale", type=rescale_factor, nargs="+", metavar="F",
                   help="also cut patches from each training image downscaled by these factors (MATLAB bicubic, "
                        "before the LR is made), as the FSRCNN paper augments its 91 images; 1 is the image itself "
                        f"(default: {' '.join(map(str, PAPER_RESCALE))} with --augment, else 1)")
    g = p.add_argument_group("files")
    g.add_argument("--output", type=Path, help="training file (default: data/h5/<images>_x<scale>_<layout>_<color>.h5)")
    g.add_argument("--eval-output", type=Path, help="validation file (default: data/h5/<images>-val_x<scale>_<layout>_<color>.h5)")
    add_data_root(g)
    g.add_argument("--max-images", type=non_negative_int, default=0, help="use only the first N training images (0: all)")
    return p.parse_args(argv)


def _source(files: list[Path], root: Path) -> str:
    """Where images came from, relative to the data root when under it (no machine's paths in records)."""
    folders = sorted({Path(f).parent for f in files})
    return ", ".join(str(f.resolve().relative_to(root.resolve())) if f.resolve().is_relative_to(root.resolve()) else str(f)
                     for f in folders)


def recorded_command(cfg: Packing, held: int, output: Path, eval_output: Path) -> str:
    """This call with every setting spelled out, as the files record it: a recipe replays it.

    ``held``: how many images were held out for validation (the default's count is named).
    The data root is left out (it is the replaying machine's: $SR_DATA or --data-root).
    """
    root = cfg.root
    words = ["python", "prepare_h5.py", "--scale", str(cfg.scale), "--layout", cfg.layout, "--color", cfg.color,
             "--images", *(portable(spec, root) for spec in cfg.images)]
    if cfg.eval_images:
        words += ["--eval-images", portable(cfg.eval_images, root)]
    else:
        words += ["--val-images", str(held)]
    words += ["--patch-size", str(cfg.patch_size), "--stride", str(cfg.stride)]
    if cfg.augment:
        words.append("--augment")
    words += ["--rescale", *(f"{f:g}" for f in cfg.rescale)]
    if cfg.max_images:
        words += ["--max-images", str(cfg.max_images)]
    words += ["--output", portable(output, root), "--eval-output", portable(eval_output, root)]
    return shlex.join(words)


def write_training_file(cfg: Packing, output: Path, name: str, files: list[Path], held: list[Path], command: str) -> dict:
    lr_side = cfg.patch_size if cfg.layout == "upsampled" else cfg.patch_size // cfg.scale
    channels = COLORS[cfg.color]
    attrs = dict(kind="train", scale=cfg.scale, layout=cfg.layout, color=cfg.color, patch_size=cfg.patch_size,
                 stride=cfg.stride, augment=cfg.augment, rescale=json.dumps(list(cfg.rescale)), degradation=DEGRADATION,
                 source=_source(files, cfg.root), source_name=name, held_out=json.dumps([Path(f).name for f in held]),
                 command=command)
    writer = PatchWriter(output, (channels, lr_side, lr_side), (channels, cfg.patch_size, cfg.patch_size), attrs)
    used, skipped = 0, []
    try:
        for path in tqdm(files, desc=f"patches {name} x{cfg.scale}", unit="img"):
            image = load_rgb(path)
            cut = 0
            for factor in cfg.rescale:
                hr_rgb = mod_crop(image if factor == 1 else to_uint8(imresize(image, factor)), cfg.scale)
                if min(hr_rgb.shape[:2]) < cfg.patch_size:
                    continue
                inputs = model_input(downscale(hr_rgb, cfg.scale), cfg.scale, cfg.layout, cfg.color)
                lr, hr = patch_pairs(inputs, to_planes(hr_rgb, cfg.color), cfg.scale, cfg.layout, cfg.patch_size, cfg.stride)
                if cfg.augment:
                    lr, hr = np.concatenate(dihedral(lr)), np.concatenate(dihedral(hr))
                writer.append(lr, hr)
                cut += 1
            if not cut:
                skipped.append(path.name)
                continue
            used += 1
        if skipped:
            tqdm.write(f"warning: skipped {len(skipped)} image(s) smaller than a {cfg.patch_size}px patch: "
                       + ", ".join(map(quoted, skipped[:5])) + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
        if writer.count == 0:
            raise UserError(f"no patches: every image in {name} is smaller than --patch-size {cfg.patch_size}")
        writer.commit(images=used, patches=writer.count)
    except BaseException:
        writer.abort()
        raise
    return dict(path=output, images=used, patches=writer.count, lr=(channels, lr_side, lr_side),
                hr=(channels, cfg.patch_size, cfg.patch_size))


def write_eval_file(cfg: Packing, output: Path, name: str, files: list[Path], command: str) -> dict:
    attrs = dict(kind="eval", scale=cfg.scale, layout=cfg.layout, color=cfg.color, degradation=DEGRADATION,
                 source=_source(files, cfg.root), source_name=name, command=command)
    writer = EvalWriter(output, attrs)
    used = 0
    try:
        for path in tqdm(files, desc=f"eval {name} x{cfg.scale}", unit="img"):
            hr_rgb = mod_crop(load_rgb(path), cfg.scale)
            # Scoring crops `scale` pixels per side and SSIM needs an 11x11 window inside.
            if min(hr_rgb.shape[:2]) < smallest_scored_side(cfg.scale):
                tqdm.write(f"warning: skipped {quoted(path.name)}: too small for x{cfg.scale} evaluation", file=sys.stderr)
                continue
            writer.add(path.stem, model_input(downscale(hr_rgb, cfg.scale), cfg.scale, cfg.layout, cfg.color), hr_rgb)
            used += 1
        if used == 0:
            raise UserError(f"no usable evaluation images in {name}")
        writer.commit(images=used)
    except BaseException:
        writer.abort()
        raise
    return dict(path=output, images=used)


def main(args) -> dict:
    cfg = Packing.settle(args)
    start = time.perf_counter()
    name, files, val_name, val_files = choose_images(cfg)
    output, eval_output = cfg.outputs(name, val_name)
    command = recorded_command(cfg, len(val_files), output, eval_output)
    train = write_training_file(cfg, output, name, files, [] if cfg.eval_images else val_files, command)
    evaluation = write_eval_file(cfg, eval_output, val_name, val_files, command)
    seconds = time.perf_counter() - start
    size_mb = (train["path"].stat().st_size + evaluation["path"].stat().st_size) / 1e6
    print(f"wrote {quoted(train['path'])}: {train['images']} images, {train['patches']} patches, "
          f"lr {train['lr']} hr {train['hr']} uint8{', augmented x8' if cfg.augment else ''}"
          + (f", rescaled by {' '.join(f'{f:g}' for f in cfg.rescale)}" if cfg.rescale != (1.0,) else ""))
    print(f"wrote {quoted(evaluation['path'])}: {evaluation['images']} whole validation images"
          + ("" if cfg.eval_images else f", held out of the training images: {', '.join(quoted(Path(f).stem) for f in val_files)}"))
    print(f"{size_mb:.1f} MB in {seconds:.1f} s")
    return dict(train=train, eval=evaluation, seconds=seconds)


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
