"""What one prepare_h5.py call packs, decided before any image is read.

``Packing`` is every setting of the call, defaults filled in and checked; ``choose_images``
resolves its image sets into training and validation files: disjoint by content, never a test
set, and written to outputs that replace no input.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from sr.data.h5 import DEFAULT_SETS, TEST_SETS, VALIDATION_SUFFIX, default_h5_path, default_patch, held_out
from sr.data.sets import content_hash, data_root, resolve_images, test_set_hashes
from sr.errors import UserError

# The FSRCNN paper's data augmentation: each of the 91 images also downscaled by 0.9, 0.8, 0.7
# and 0.6 (Dong et al., ECCV 2016, section 4.1), besides the rotations.
PAPER_RESCALE = (1.0, 0.9, 0.8, 0.7, 0.6)


@dataclass(frozen=True)
class Packing:
    """Every setting of one prepare_h5.py call, defaults filled in and checked before any image is read."""

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
