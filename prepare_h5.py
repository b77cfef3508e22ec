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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sr.cli import ArgumentParser, add_data_root, add_scale, non_negative_int, positive_int, run
from sr.data.h5 import DEFAULT_SETS, TEST_SETS, VALIDATION_SUFFIX, EvalWriter, PatchWriter, default_h5_path, default_patch, held_out
from sr.data.sets import content_hash, data_root, portable, resolve_images, test_set_hashes
from sr.data.degradation import downscale, mod_crop, model_input, to_planes, to_uint8
from sr.imresize import imresize
from sr.metrics import smallest_scored_side
from sr.errors import UserError, quoted
from sr.data.images import load_rgb
from sr.models import COLORS, LAYOUTS
from sr.data.patches import dihedral, patch_pairs

DEGRADATION = "matlab-bicubic-antialias, lr rounded to uint8"
# The FSRCNN paper's data augmentation: each of the 91 images also downscaled by 0.9, 0.8, 0.7
# and 0.6 (Dong et al., ECCV 2016, section 4.1), besides the rotations.
PAPER_RESCALE = (1.0, 0.9, 0.8, 0.7, 0.6)


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


@dataclass(frozen=True)
class Packing:
    """Every setting of one call, defaults filled in and checked before any image is read."""

    scale: int
    layout: str
    color: str
    images: tuple[str, ...]
    eval_images: str | None
    val_images: int | None  # None: the default share (sr.data.h5.held_out)
    patch_size: int
    stride: int
    augment: bool
    rescale: tuple[float, ...]
    max_images: int
    root: Path
    output: Path | None  # None: named after the image set, once it is resolved
    eval_output: Path | None

    @classmethod
    def settle(cls, args: argparse.Namespace) -> Packing:
        patch, stride = default_patch(args.scale, args.layout, args.color)
        cfg = cls(scale=args.scale, layout=args.layout, color=args.color,
                  images=tuple(args.images or [DEFAULT_SETS[args.color][0]]), eval_images=args.eval_images,
                  val_images=args.val_images, patch_size=args.patch_size or patch, stride=args.stride or stride,
                  augment=args.augment, rescale=tuple(args.rescale or (PAPER_RESCALE if args.augment else (1.0,))),
                  max_images=args.max_images, root=data_root(args.data_root), output=args.output,
                  eval_output=args.eval_output)
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.layout == "lr-hr":
            for flag, value in (("--patch-size", self.patch_size), ("--stride", self.stride)):
                if value % self.scale:
                    raise UserError(f"{flag} {value} is not a multiple of --scale {self.scale}, "
                                    "which the lr-hr layout needs so that LR patches line up with HR ones")
        if self.patch_size < 2 * self.scale:
            raise UserError(f"--patch-size {self.patch_size} is too small for x{self.scale}")
        if self.eval_images and self.val_images:
            raise UserError("--val-images holds images out of the training set; with --eval-images the validation set is given")
        if not self.eval_images and self.val_images == 0:
            raise UserError("--val-images 0 holds no image out: name a validation set with --eval-images")

    def outputs(self, name: str, val_name: str) -> tuple[Path, Path]:
        """(training file, validation file), by default named after the resolved image sets."""
        return (self.output or default_h5_path(name, self.scale, self.layout, self.color),
                self.eval_output or default_h5_path(val_name, self.scale, self.layout, self.color))


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


def check_outputs(output: Path, eval_output: Path, inputs: list[Path]) -> None:
    """Refuse outputs that would replace an input image or folder, or each other; called before any
    image is read. Paths are compared resolved (symlinks, '..'): the rename replaces whatever the
    name leads to."""
    if output.resolve() == eval_output.resolve():
        raise UserError(f"--output and --eval-output are both {output}: the validation file would replace the "
                        "training file; give two files")
    what = {path.parent.resolve(): f"the input folder {path.parent}" for path in inputs}
    what.update({path.resolve(): f"the input image {path}" for path in inputs})
    for flag, path in (("--output", output), ("--eval-output", eval_output)):
        if path.resolve() in what:
            raise UserError(f"{flag} {path} is {what[path.resolve()]}: writing it would destroy an input; "
                            "write the HDF5 file elsewhere")
        if path.is_dir():
            raise UserError(f"{flag} {path} is a folder; name the HDF5 file to write")


def choose_images(cfg: Packing) -> tuple[str, list[Path], str, list[Path]]:
    """(training name, training files, validation name, validation files), disjoint.

    Validation images are held out of the training images unless --eval-images names
    another set; a test set is never used to train or to choose a checkpoint. All of it goes
    by content (sha256 of the file), not by path or name: a copy of an image under another
    name, or the same folder under a symlink, is the same image.
    """
    root = cfg.root
    names, files = [], []
    for spec in cfg.images:
        name, found = resolve_images(spec, root)
        names.append(name)
        files += found
    name = "+".join(names)
    listed = files
    val_name, val_files = resolve_images(cfg.eval_images, root) if cfg.eval_images else (name + VALIDATION_SUFFIX, [])
    check_outputs(*cfg.outputs(name, val_name), [*files, *val_files])  # listed, not yet read
    digest_of = {path: content_hash(path) for path in files}
    # One path per content: the same image under a second path would train twice, and a held-out
    # image would come back into training under its other name.
    by_content: dict[str, Path] = {}
    for path in files:
        by_content.setdefault(digest_of[path], path)
    if len(by_content) < len(files):
        print(f"{len(files) - len(by_content)} of the {len(files)} training images repeat another's content; "
              "each image is used once", file=sys.stderr)
        files = list(by_content.values())
    test_images = test_set_hashes(root, TEST_SETS)
    for spec, set_name in zip(cfg.images, names):
        if set_name in TEST_SETS:
            raise UserError(f"--images {spec}: {set_name} is a test set; it is never trained on (score it with eval.py)")
    for digest, path in by_content.items():
        if digest in test_images:
            raise UserError(f"--images: {path} is {test_images[digest]} of a test set (same content); "
                            "a test set is never trained on (score it with eval.py)")
    if cfg.eval_images:
        val_hashes = {content_hash(path): path for path in val_files}
        in_test = [digest for digest in val_hashes if digest in test_images]
        if val_name in TEST_SETS or in_test:
            what = f"{val_name} is a test set" if val_name in TEST_SETS else \
                f"{val_hashes[in_test[0]]} is {test_images[in_test[0]]} of a test set (same content)"
            raise UserError(f"--eval-images {cfg.eval_images}: {what}, and the validation set picks the "
                            "best epoch; leave --eval-images out to hold out training images, and score test sets "
                            "with eval.py after training")
        overlap = [path for digest, path in val_hashes.items() if digest in by_content]
        if overlap:
            raise UserError(f"--eval-images shares {len(overlap)} image(s) with the training images (same content), "
                            f"e.g. {sorted(overlap)[0].name}")
    else:
        # The held-out images are chosen over every distinct file (a path reached twice, as through a
        # symlinked folder, counts once), before duplicates by content are dropped: so T91, which holds
        # one image twice (t36 = t65), keeps the validation images its recorded recipes were trained
        # without. Training then leaves out every file with a held-out image's content.
        distinct: dict[Path, Path] = {}
        for path in listed:
            distinct.setdefault(path.resolve(), path)
        val_files = held_out(list(distinct.values()), cfg.val_images)
        held_hashes = {digest_of[path] for path in val_files}
        files = [path for digest, path in by_content.items() if digest not in held_hashes]
    if cfg.max_images:
        files = files[: cfg.max_images]
    return name, files, val_name, val_files


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
