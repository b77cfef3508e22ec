"""Training batches degraded on the fly: a drop-in for ``PatchDataset`` (``--degrade``).

Each batch's degradation is a pure function of (run seed, the batch's sorted patch indices),
so DataLoader workers, any worker count and a run resumed mid-epoch see the same data.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sr.color import rgb_to_y
from sr.data.degradation import to_uint8
from sr.data.h5 import prepare_command
from sr.data.degradation_settings import DegradationSettings
from sr.data.realistic import degrade_batch
from sr.errors import UserError


def batch_seed(seed: int, indices: np.ndarray) -> int:
    """A 64-bit generator seed from the run's seed and a batch's sorted patch indices.

    blake2b rather than ``hash()``: the same in every process and Python version.
    """
    data = np.concatenate([[seed], indices]).astype("<i8").tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _y_planes(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, h, w) uint8 RGB -> (N, 1, h, w) uint8 Y, rounded as ``sr.data.degradation.to_planes`` does."""
    y = to_uint8(rgb_to_y(rgb.permute(0, 2, 3, 1).numpy()))  # (N, h, w)
    return torch.from_numpy(y)[:, None]


class DegradedPatches(Dataset):
    """A clean lr-hr RGB ``PatchDataset`` whose batches come out degraded; a drop-in for it.

    ``dataset[indices]`` -> (lr, hr) uint8, (N, C, H/scale, W/scale) and (N, C, H, W), C = 3
    for ``color="rgb"`` and 1 (BT.601 Y, as prepare_h5.py makes it) for ``"y"``, in the order
    of ``indices``. Clean samples (``settings.clean_prob``) get the stored LR, the protocol's
    bicubic of the whole image cut to the patch.

    The degradation is a pure function of (seed, the set of indices in the batch): the batch's
    generator is seeded from the sorted indices, and samples are degraded in sorted order, so
    the order within a batch changes nothing but the order of the output. Nothing depends on
    the epoch, the worker that makes the batch, or the batches made before it, so a run
    resumed mid-epoch, or run with any number of workers, sees the same data bit for bit.
    Epochs still differ because the sampler shuffles: two epochs would give a patch the same
    degradation only if they put it in a batch with exactly the same other patches (for a
    shuffled file of more than one batch, never in practice; for a file of one batch, always).
    A sample's degradation does depend on the other indices of its batch.
    """

    def __init__(self, base: Any, scale: int, settings: DegradationSettings, seed: int, color: str = "rgb"):
        attrs = base.attrs
        if color not in ("rgb", "y"):
            raise ValueError(f"color must be 'rgb' or 'y', got {color!r}")
        wanted = {"scale": scale, "layout": "lr-hr", "color": "rgb"}
        wrong = [f"{k} {attrs.get(k)!r} (need {v!r})" for k, v in wanted.items() if attrs.get(k) != v]
        if wrong or base.hr_shape[0] != 3:
            raise UserError(f"{base.path}: degrading on the fly needs clean lr-hr RGB patches at x{scale}, got "
                            + (", ".join(wrong) or f"{base.hr_shape[0]}-channel HR")
                            + f"; make them with: {prepare_command(scale, 'lr-hr', 'rgb')}")
        if base.hr_shape[1] % scale or base.hr_shape[2] % scale:
            raise UserError(f"{base.path}: HR patches {base.hr_shape[1:]} are not a multiple of x{scale}")
        self.base, self.scale, self.settings, self.seed, self.color = base, scale, settings, seed, color
        channels = 1 if color == "y" else 3
        self.lr_shape = (channels, *base.lr_shape[1:])
        self.hr_shape = (channels, *base.hr_shape[1:])
        self.attrs = {**attrs, "color": color, "degradation": json.dumps(settings.to_dict()), "degradation_seed": seed}

    @property
    def path(self):
        return self.base.path

    @property
    def in_memory(self) -> bool:
        return self.base.in_memory

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        """Does nothing, on purpose. An epoch stored here would not reach persistent loader
        workers (each holds its own copy of the dataset, made when it started), so batches
        would depend on which process made them; the seed comes from the batch instead."""

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        if index.ndim != 1 or len(index) == 0:
            raise ValueError(f"indices must be a non-empty list of patch indices, got shape {index.shape}")
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        clean_lr, hr = self.base[ordered.tolist()]  # (N, 3, h, w), (N, 3, H, W) uint8 in sorted order
        generator = torch.Generator().manual_seed(batch_seed(self.seed, ordered))
        lr = degrade_batch(hr, self.scale, self.settings, generator, clean_lr=clean_lr)
        if self.color == "y":
            lr, hr = _y_planes(lr), _y_planes(hr)
        if not np.array_equal(order, np.arange(len(index))):  # back to the caller's order
            back = torch.from_numpy(np.argsort(order))
            lr, hr = lr.index_select(0, back), hr.index_select(0, back)
        return lr, hr
