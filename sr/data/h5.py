"""HDF5 patch files: streaming writers, the training patch dataset and the eval image set.

Training file: uint8 datasets ``lr`` (N, C, h, w) and ``hr`` (N, C, H, W), chunked along N.
Eval file: one group per image under ``images/``, each with ``input`` (C, h, w), what the
model reads, and ``hr`` (H, W, 3), the mod-cropped RGB ground truth.
Every setting of ``prepare_h5.py`` is in the root ``attrs``; readers check them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from sr.atomic import AtomicFile
from sr.errors import UserError
from sr.models import COLORS, LAYOUTS

CHUNK = 64  # patches per HDF5 chunk: a batch read touches a few chunks, not thousands


# The report's two halves: Y models on T91 (tested on Set5), RGB models on BSDS200 (BSDS100).
# Each pair is (training set, validation set): the validation images are held out of the
# training set by prepare_h5.py, so no test set ever picks a checkpoint.
DEFAULT_SETS = {"y": ("T91", "T91-val"), "rgb": ("BSDS200", "BSDS200-val")}
# Benchmark sets that only ever score finished models, never choose one.
TEST_SETS = ("Set5", "Set14", "BSDS100", "Urban100", "Manga109")
VALIDATION_SUFFIX = "-val"
VALIDATION_SHARE = 0.05  # 5 of T91's 91 images, 10 of BSDS200's 200


def held_out(files: list, count: int | None = None) -> list:
    """The validation images of a training set: ``count`` (default 5%, at least 2) spread
    evenly over the sorted list, so the choice is fixed and covers the whole set."""
    files = sorted(files)
    count = max(2, round(len(files) * VALIDATION_SHARE)) if count is None else count
    if count <= 0:
        return []
    if count >= len(files):
        raise UserError(f"cannot hold out {count} of {len(files)} images for validation and still train")
    step = len(files) / count
    return [files[int(step * k + step / 2)] for k in range(count)]


def default_patch(scale: int, layout: str, color: str) -> tuple[int, int]:
    """Default (patch, stride) in HR pixels.

    upsampled: 33 / 14, SRCNN's sub-images. lr-hr: LR patches of 11 px (stride 5) for Y and
    of 25 px (stride 9) for RGB, times the scale: at x4 RGB that is the report's 100 / 25 px
    pairs, and 15,400 BSDS200 patches, near the report's 15,552 per epoch.
    """
    if layout == "upsampled":
        return 33, 14
    lr_patch, lr_stride = (11, 5) if color == "y" else (25, 9)
    return lr_patch * scale, lr_stride * scale


def default_h5_path(images: str, scale: int, layout: str, color: str, folder: str | Path = "data/h5") -> Path:
    """Where prepare_h5.py writes, and where the training scripts look, by default."""
    return Path(folder) / f"{images}_x{scale}_{layout}_{color}.h5"


def prepare_command(scale: int, layout: str, color: str) -> str:
    """The prepare_h5.py call that makes the default file for these settings."""
    flags = f"--scale {scale}"
    if layout != "upsampled":
        flags += f" --layout {layout}"
    if color != "y":
        flags += f" --color {color}"
    return f"python prepare_h5.py {flags}"


class _AtomicH5:
    """An HDF5 file written under a temporary name and renamed into place on success
    (``sr.atomic``), so an interrupted run never leaves a file that looks complete."""

    def __init__(self, path: str | Path, attrs: dict[str, Any]):
        self.target = AtomicFile(path, lock=False)  # HDF5 locks the file it writes itself
        self.path = self.target.path
        try:
            self.file = h5py.File(self.target.tmp, "w")
        except OSError as exc:
            self.target.abort()
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.file.attrs.update(attrs)

    def commit(self, **final_attrs: Any) -> None:
        self.file.attrs.update(final_attrs)
        self.file.close()
        self.target.commit()

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.target.abort()


class PatchWriter(_AtomicH5):
    """Appends (lr, hr) uint8 patch batches to resizable, chunked datasets."""

    def __init__(self, path: str | Path, lr_shape: tuple, hr_shape: tuple, attrs: dict[str, Any]):
        super().__init__(path, attrs)
        self.count = 0
        for name, shape in (("lr", lr_shape), ("hr", hr_shape)):
            self.file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), chunks=(CHUNK, *shape), dtype="u1")

    def append(self, lr: np.ndarray, hr: np.ndarray) -> None:
        n = len(lr)
        for name, data in (("lr", lr), ("hr", hr)):
            dset = self.file[name]
            dset.resize(self.count + n, axis=0)
            dset[self.count : self.count + n] = data
        self.count += n


class EvalWriter(_AtomicH5):
    """Stores whole eval images, one group each."""

    def __init__(self, path: str | Path, attrs: dict[str, Any]):
        super().__init__(path, attrs)
        self.images = self.file.create_group("images")

    def add(self, name: str, inputs: np.ndarray, hr: np.ndarray) -> None:
        group = self.images.create_group(name)
        group.create_dataset("input", data=inputs)
        group.create_dataset("hr", data=hr)


def read_attrs(path: str | Path, kind: str, hint: str = "") -> dict[str, Any]:
    """The root attributes of a file made by prepare_h5.py; UserError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" + (f"; make it with: {hint}" if hint else ""))
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from None
    if attrs.get("kind") != kind:
        raise UserError(f"{path}: not a {kind} file of prepare_h5.py (kind={attrs.get('kind')!r})")
    return attrs


def check_fits(attrs: dict[str, Any], path: str | Path, scale: int, layout: str, color: str, hint: str = "") -> None:
    """Refuse a file made for another scale, layout or colour than the model needs."""
    wanted = {"scale": scale, "layout": layout, "color": color}
    wrong = [f"{k} {attrs.get(k)!r} (need {v!r})" for k, v in wanted.items() if attrs.get(k) != v]
    if wrong:
        raise UserError(f"{path} does not fit the model: " + ", ".join(wrong) + (f"; make one with: {hint}" if hint else ""))


def _geometry(attrs: dict[str, Any], path: Path) -> tuple[int, int, str]:
    """(channels, how many times HR is LR's size, "x4 lr-hr y") as a file's attrs give them."""
    scale, layout, color = attrs.get("scale"), attrs.get("layout"), attrs.get("color")
    if not isinstance(scale, int) or scale < 1 or layout not in LAYOUTS or color not in COLORS:
        raise UserError(f"{path}: its attrs give scale {scale!r}, layout {layout!r}, color {color!r}: not a file of "
                        "prepare_h5.py; make it again with prepare_h5.py")
    return COLORS[color], scale if layout == "lr-hr" else 1, f"x{scale} {layout} {color}"


def _px(hw: tuple[int, ...]) -> str:
    """An (h, w) size as messages give it: "33x33 px", width first."""
    return f"{hw[1]}x{hw[0]} px"


def _times(lr_hw: tuple[int, ...], hr_hw: tuple[int, ...]) -> str:
    """How many times the HR side is the LR side, as "x3" (or "x1.33")."""
    return f"x{hr_hw[0] / lr_hw[0]:.3g}" if lr_hw[0] else "x?"


def check_patches(path: Path, attrs: dict[str, Any], lr: tuple[int, ...], hr: tuple[int, ...], dtypes: set) -> None:
    """A training file's ``lr`` and ``hr`` shapes, (N, C, h, w) and (N, C, H, W), against its attrs:
    a file that says x4 over x3 patches, RGB over Y, or holds unequal counts is refused before a batch
    is read (it would fail inside the loss or the loader, or train on the wrong pairs)."""
    channels, factor, said = _geometry(attrs, path)
    if len(lr) != 4 or len(hr) != 4 or dtypes != {np.dtype(np.uint8)}:
        raise UserError(f"{path}: its lr/hr datasets are {lr} and {hr} of {', '.join(map(str, dtypes))}, "
                        "not the (N, C, h, w) uint8 patches of prepare_h5.py")
    if lr[0] != hr[0]:
        raise UserError(f"{path}: holds {lr[0]:,} LR patches but {hr[0]:,} HR patches; make it again with prepare_h5.py")
    if lr[1] != channels or hr[1] != channels:
        raise UserError(f"{path}: its attrs say {said} ({channels} channels), but its patches have "
                        f"{lr[1] if lr[1] != channels else hr[1]}")
    if (hr[2], hr[3]) != (lr[2] * factor, lr[3] * factor):
        raise UserError(f"{path}: its attrs say {said}, but its LR patches are {_px(lr[2:])} and its HR patches "
                        f"{_px(hr[2:])} ({_times(lr[2:], hr[2:])})")


def check_eval_image(path: Path, attrs: dict[str, Any], name: str, inputs: np.ndarray, hr: np.ndarray) -> None:
    """One eval image, ``inputs`` (C, h, w) and ``hr`` (H, W, 3), against the file's attrs: uint8 as
    prepare_h5.py writes them (a float array with NaN would score "nan" and never choose a best.pth),
    in the attrs' channels, and HR the attrs' scale times the input (once for the upsampled layout)."""
    channels, factor, said = _geometry(attrs, path)
    for part, array in (("input", inputs), ("hr", hr)):
        if array.dtype != np.uint8:
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise UserError(f"{path}: image {name!r} {part} holds NaN or infinite values; make it again with prepare_h5.py")
            raise UserError(f"{path}: image {name!r} {part} is {array.dtype}, not the uint8 of prepare_h5.py")
    if inputs.ndim != 3 or hr.ndim != 3 or hr.shape[2] != 3:
        raise UserError(f"{path}: image {name!r} has input {inputs.shape} and hr {hr.shape}, not (C, h, w) and (H, W, 3)")
    if inputs.shape[0] != channels:
        raise UserError(f"{path}: its attrs say {said} ({channels} channels), but image {name!r} input has {inputs.shape[0]}")
    if hr.shape[:2] != (inputs.shape[1] * factor, inputs.shape[2] * factor):
        raise UserError(f"{path}: its attrs say {said}, but image {name!r} is {_px(inputs.shape[1:])} in and "
                        f"{_px(hr.shape[:2])} out ({_times(inputs.shape[1:], hr.shape[:2])})")


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class PatchDataset(Dataset):
    """Training patches. ``dataset[indices]`` returns one whole batch, (lr, hr) uint8 tensors.

    ``load="memory"`` reads both arrays into RAM once (fast; the default when the file
    takes under half the available memory); ``"lazy"`` reads each batch from the file,
    which every loader worker opens once for itself.
    """

    def __init__(self, path: str | Path, load: str = "auto"):
        self.path = Path(path)
        self.attrs = read_attrs(self.path, "train")
        with h5py.File(self.path, "r") as f:
            if not all(isinstance(f.get(name), h5py.Dataset) for name in ("lr", "hr")):
                raise UserError(f"{self.path}: holds no 'lr' and 'hr' datasets; make it again with prepare_h5.py")
            check_patches(self.path, self.attrs, f["lr"].shape, f["hr"].shape, {f["lr"].dtype, f["hr"].dtype})
            self.length = f["lr"].shape[0]
            nbytes = f["lr"].nbytes + f["hr"].nbytes
            self.lr_shape, self.hr_shape = f["lr"].shape[1:], f["hr"].shape[1:]
            if load == "auto":
                load = "memory" if nbytes < _available_memory() // 2 else "lazy"
            self.in_memory = load == "memory"
            if self.in_memory:
                self.lr = torch.from_numpy(f["lr"][...])
                self.hr = torch.from_numpy(f["hr"][...])
        if self.length == 0:
            raise UserError(f"{self.path}: holds no patches")
        self._file: h5py.File | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.in_memory:
            index = torch.as_tensor(indices)
            return self.lr[index], self.hr[index]
        if self._file is None or self._pid != os.getpid():  # first use in this process
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        index = np.sort(np.asarray(indices))  # h5py reads increasing indices; order in a batch is free
        return torch.from_numpy(self._file["lr"][index]), torch.from_numpy(self._file["hr"][index])

    def __getstate__(self) -> dict:  # an open h5py handle cannot go to a worker process
        return {**self.__dict__, "_file": None, "_pid": -1}


class EvalImage(NamedTuple):
    name: str
    inputs: np.ndarray  # (C, h, w) uint8, what the model reads
    hr: np.ndarray  # (H, W, 3) uint8 RGB ground truth


def load_eval_set(path: str | Path, hint: str = "") -> tuple[dict[str, Any], list[EvalImage]]:
    attrs = read_attrs(path, "eval", hint)
    with h5py.File(path, "r") as f:
        groups = f.get("images")
        if not isinstance(groups, h5py.Group) or not all(
                isinstance(g, h5py.Group) and all(isinstance(g.get(k), h5py.Dataset) for k in ("input", "hr"))
                for g in groups.values()):
            raise UserError(f"{path}: its images are not groups of 'input' and 'hr' datasets; make it again with prepare_h5.py")
        images = [EvalImage(name, g["input"][...], g["hr"][...]) for name, g in groups.items()]
    for image in images:
        check_eval_image(Path(path), attrs, *image)
    if not images:
        raise UserError(f"{path}: holds no images")
    return attrs, images
