"""Shared fixtures and helpers: the benchmark data root, small synthetic images, tiny HDF5 files,
checkpoints of untrained networks, and a Ctrl-C at a chosen batch."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

import prepare_h5
from sr.checkpoint import bare_module
from sr.models import MODELS, create_model, model_kwargs

ROOT = Path(__file__).resolve().parent.parent

# The Ctrl-C tests need Ctrl-C to arrive. A suite started in the background from a script
# (`nohup pytest &`) inherits SIGINT ignored, and so would every process it starts; a Python
# handler here is the default again, and exec() resets handled signals for child processes.
signal.signal(signal.SIGINT, signal.default_int_handler)
SETS = ("T91", "Set5", "Set14", "BSDS100", "BSDS200")
# BasicSR's reference numbers for plain bicubic: (PSNR dB, SSIM) on Y, a border of `scale` pixels cropped.
BICUBIC = {
    ("Set5", 2): (33.68, 0.9305), ("Set5", 3): (30.40, 0.8690), ("Set5", 4): (28.43, 0.8113),
    ("Set14", 2): (30.33, 0.8700), ("Set14", 3): (27.63, 0.7760), ("Set14", 4): (26.09, 0.7050),
    ("BSDS100", 2): (29.56, 0.8436), ("BSDS100", 3): (27.21, 0.7392), ("BSDS100", 4): (25.96, 0.6682),
}  # fmt: skip


def _default_data_root() -> Path:
    """$SR_DATA; else ./data when `python -m sr.fetch` has filled it (the scripts' default too); else
    the project's shared copy beside the checkout (../shared/datasets), which CI reads."""
    if os.environ.get("SR_DATA"):
        return Path(os.environ["SR_DATA"]).resolve()  # tests change directory: a relative root would move
    fetched = ROOT / "data"
    return fetched if all((fetched / name).is_dir() for name in SETS) else ROOT.parent / "shared" / "datasets"


DATA_ROOT = _default_data_root()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark images (``_default_data_root``). Missing data fails the test under CI, skips it elsewhere."""
    if not all((DATA_ROOT / name).is_dir() for name in SETS):
        message = f"benchmark datasets not found under {DATA_ROOT} (set SR_DATA, or get them: python -m sr.fetch --data-root {DATA_ROOT})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return DATA_ROOT


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A photo-like (H, W, 3) uint8 image: smooth colour fields plus a little texture."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(2, 9, size=3)
        channels.append(0.5 + 0.25 * np.sin(a * xx + rng.uniform(0, 6)) * np.cos(b * yy) + 0.15 * np.sin(c * (xx + yy)))
    img = np.stack(channels, axis=2) + rng.normal(0, 0.02, size=(h, w, 3))
    return np.clip(img * 255, 0, 255).round().astype(np.uint8)


PHOTO_HW = (62, 50)  # not multiples of 3 on purpose: x3 scoring must crop them (to 60 x 48)


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> Path:
    """One photo-like PNG of PHOTO_HW pixels: what eval.py --image and --upscale get in the tests."""
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(smooth_image(np.random.default_rng(5), *PHOTO_HW)).save(path)
    return path


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory) -> dict[str, Path]:
    """'train': six 60-90 px images and one too small for a patch; 'eval': three 48-64 px images."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("images")
    folders = {"train": root / "train", "eval": root / "eval"}
    for folder in folders.values():
        folder.mkdir()
    for i, (h, w) in enumerate([(60, 72), (66, 90), (72, 61), (81, 64), (64, 64), (90, 75)]):
        Image.fromarray(smooth_image(rng, h, w)).save(folders["train"] / f"img{i}.png")
    Image.fromarray(smooth_image(rng, 20, 20)).save(folders["train"] / "tiny.png")
    for i, (h, w) in enumerate([(48, 60), (64, 52), (57, 57)]):
        Image.fromarray(smooth_image(rng, h, w)).save(folders["eval"] / f"val{i}.png")
    return folders


def make_h5(tmp_dir: Path, folders: dict[str, Path], scale: int, *extra: str) -> tuple[Path, Path]:
    """Run prepare_h5.py on the synthetic folders; returns (train file, eval file)."""
    train, evaluation = tmp_dir / f"train_x{scale}.h5", tmp_dir / f"eval_x{scale}.h5"
    argv = ["--scale", str(scale), "--images", str(folders["train"]), "--eval-images", str(folders["eval"]),
            "--output", str(train), "--eval-output", str(evaluation), *extra]
    prepare_h5.main(prepare_h5.parse_args(argv))
    return train, evaluation


@pytest.fixture(scope="session")
def h5_x3(tmp_path_factory, image_folders) -> tuple[Path, Path]:
    """Upsampled-layout Y patches at x3 (stride 9: a few hundred patches)."""
    return make_h5(tmp_path_factory.mktemp("h5"), image_folders, 3, "--stride", "9")


def read_metrics(run: Path) -> list[dict[str, str]]:
    """A run folder's metrics.csv, one dict per epoch."""
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def weights_only_checkpoint(arch: str, scale: int, color: str | None = None, *, model: nn.Module | None = None) -> dict:
    """A checkpoint of ``model`` (default: a fresh ``create_model(arch, scale, color)``) holding what
    eval.py and sr.export read to rebuild it, and nothing a resume needs; ``save_checkpoint`` or
    ``save_weights`` write it.

    Tests need loadable weights without training a run. The fields are the ones
    ``sr.training.state.checkpoint`` puts first, which needs a whole run's config to call;
    ``model_kwargs`` comes from the model table, as ``create_model`` built ``model`` from it.
    """
    if model is None:
        model, _ = create_model(arch, scale, color)
    spec = MODELS[arch]
    return dict(arch=arch, model_kwargs=model_kwargs(arch, scale, color), scale=scale, color=color or spec.color,
                layout=spec.layout, model=bare_module(model).state_dict())


def interrupt_at_call(monkeypatch, n: int) -> None:
    """Make the training loop's ``n``-th ``to_device`` call raise KeyboardInterrupt, as a Ctrl-C there would.

    The loop moves two tensors (LR, HR) to the device per batch, so ``n = 2 * k + 1`` stops
    before batch ``k + 1`` runs, after ``k`` batches are done. ``monkeypatch.undo()`` ends it.
    """
    import sr.training.loop  # here, not at the top: only the training tests need the training stack

    calls = {"n": 0}
    real = sr.training.loop.to_device

    def to_device_or_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sr.training.loop, "to_device", to_device_or_stop)
