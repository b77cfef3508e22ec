"""The training data of a run and its batches, in an order fixed by (seed, epoch).

Every batch is a whole (lr, hr) pair of uint8 (N, C, H, W) tensors. A DataLoader brings them
from the patch file (in RAM or read lazily); on a GPU with room for the whole file they stay
on the device and each batch is indexed there, in the same order.
"""

from __future__ import annotations

import itertools
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

from sr import distributed
from sr.data.field import field_degrade
from sr.data.h5 import EvalImage, PatchDataset, check_fits, load_eval_set, prepare_command, read_attrs
from sr.errors import UserError, quoted
from sr.interrupts import STOP_SIGNALS
from sr.data.degradation import model_input
from sr.data.degraded_patches import DegradedPatches
from sr.protocol import degrade
from sr.data.degradation_settings import DegradationSettings

Batch = tuple[torch.Tensor, torch.Tensor]


class TrainingData:
    """The training patches and eval images of a run, checked against the model."""

    def __init__(self, train: PatchDataset, eval_images: list[EvalImage], train_path: Path, eval_path: Path,
                 eval_jpeg: int | None = None, eval_degrade: tuple[str, ...] | None = None):
        self.train, self.eval_images, self.train_path, self.eval_path = train, eval_images, train_path, eval_path
        self.eval_jpeg, self.eval_degrade = eval_jpeg, eval_degrade

    @classmethod
    def open(cls, train: Path, eval_path: Path, scale: int, layout: str, color: str, load: str = "auto",
             degradation: DegradationSettings | None = None, seed: int = 0, eval_jpeg: int | None = None,
             eval_degrade: tuple[str, ...] | None = None) -> TrainingData:
        """Load both files; refuse files made for another scale, layout or colour, naming the
        prepare_h5.py call that makes the right one.

        With ``degradation``, the training file holds lr-hr RGB pairs whose HR patches are
        degraded on the fly (its clean LR serves the clean share) into what the model reads.
        With ``eval_degrade``, each eval image is scored once per field kind (``sr.data.field``).
        With ``eval_jpeg``, the eval images' LR is remade from their HR as ``eval.py --jpeg``
        makes it: the protocol's bicubic, then a JPEG save at that quality.
        """
        hint = prepare_command(scale, layout, color)
        if degradation is None:
            check_fits(read_attrs(train, "train", hint), train, scale, layout, color, hint)
            patches = PatchDataset(train, load)
        else:
            if layout != "lr-hr":
                raise UserError("--degrade needs a model that reads LR images (the lr-hr layout), e.g. fsrcnn-paper or srresnet")
            patches = DegradedPatches(PatchDataset(train, load), scale, degradation, seed, color)
        eval_attrs, images = load_eval_set(eval_path, hint)
        check_fits(eval_attrs, eval_path, scale, layout, color, hint)
        if eval_jpeg is not None:
            images = [image._replace(inputs=model_input(degrade(image.hr, scale, eval_jpeg), scale, layout, color))
                      for image in images]
        if eval_degrade:  # every image once per kind: the mean score weighs the kinds alike
            images = [image._replace(name=f"{image.name}@{kind}",
                                     inputs=model_input(field_degrade(image.hr, scale, kind), scale, layout, color))
                      for kind in eval_degrade for image in images]
        return cls(patches, images, train, eval_path, eval_jpeg, eval_degrade)

    def describe(self, batches: int, batch_size: int, on_device: bool = False) -> str:
        where = "held on the GPU" if on_device else "in memory" if self.train.in_memory else "read lazily"
        if isinstance(self.train, DegradedPatches):
            where += ", LR degraded on the fly"
        return (f"{len(self.train)} patches of {quoted(self.train_path)} ({where}), {batches} batches of {batch_size} per epoch; "
                f"eval on {len(self.eval_images)} images of {quoted(self.eval_path)}"
                + (f", LR JPEG q{self.eval_jpeg}" if self.eval_jpeg is not None else "")
                + (f", LR degraded as {' '.join(self.eval_degrade)}" if self.eval_degrade else ""))


class EpochBatches(Sampler):
    """One process's batches (lists of patch indices) for an epoch, in an order fixed by (seed, epoch).

    A DistributedSampler splits the shuffled indices across processes (world size 1 is a
    plain shuffle); ``skip`` drops the batches an interrupted epoch had already done.
    """

    def __init__(self, dataset: PatchDataset, batch_size: int, ctx: distributed.Context, seed: int):
        self.order = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True)
        self.batches = BatchSampler(self.order, batch_size, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.order.set_epoch(epoch)
        self.skip = skip

    @property
    def per_epoch(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.skip, None)

    def __len__(self) -> int:
        return len(self.batches) - self.skip


def _leave_stops_to_the_main_process(worker_id: int) -> None:
    """A worker's worker_init_fn: ignore Ctrl-C and SIGTERM. Both reach the whole process
    group; a worker they killed would end the main process with "DataLoader worker killed by
    signal" before it could save last.pth. The main process saves, then ends its workers."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    sys.excepthook = _quiet_handshakes_cut_by_a_stop


_CUT = (ConnectionResetError, BrokenPipeError, EOFError)


def _quiet_handshakes_cut_by_a_stop(exc_type, exc, tb) -> None:
    """A worker's ``sys.excepthook``. A worker hands each batch's shared memory to the main process
    through multiprocessing's resource_sharer thread, which catches its own errors and passes them
    to ``sys.excepthook`` (not ``threading.excepthook``). A main process that stops mid-handshake
    (to save last.pth) cuts that connection, and a traceback was printed beside the one-line stop
    message; that case alone is silent, anything else is printed as usual."""
    frames = traceback.extract_tb(tb)
    if issubclass(exc_type, _CUT) and any("resource_sharer" in frame.filename for frame in frames):
        return
    sys.__excepthook__(exc_type, exc, tb)


class LoaderBatches:
    """Batches through a DataLoader (worker processes when the file is read lazily)."""

    def __init__(self, dataset: PatchDataset, order: EpochBatches, workers: int, pin_memory: bool):
        self.order = order
        self.loader = DataLoader(dataset, sampler=order, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                                 persistent_workers=workers > 0, worker_init_fn=_leave_stops_to_the_main_process)
        self.per_epoch = order.per_epoch

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.loader)


class DeviceBatches:
    """The whole patch file held on ``device``; each batch is indexed there (no loader, no copy per batch)."""

    def __init__(self, dataset: PatchDataset, order: EpochBatches, device: torch.device):
        self.order, self.device = order, device
        self.lr, self.hr = dataset.lr.to(device), dataset.hr.to(device)
        self.per_epoch = order.per_epoch

    def __iter__(self) -> Iterator[Batch]:
        rows = list(self.order)
        if not rows:
            return
        indices = torch.tensor(rows, dtype=torch.long).to(self.device)  # (batches, batch size): one copy per epoch
        for index in indices:
            yield self.lr[index], self.hr[index]


def fits_on_device(dataset: PatchDataset, device: torch.device, share: float = 0.25) -> bool:
    """A CUDA device whose free memory is over 1/``share`` times the in-memory patch file."""
    if device.type != "cuda" or not isinstance(dataset, PatchDataset) or not dataset.in_memory:  # degraded batches come from workers
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return dataset.lr.nbytes + dataset.hr.nbytes < share * free


def make_batches(dataset: PatchDataset, batch_size: int, ctx: distributed.Context, seed: int, workers: int,
                 on_device: bool | None = None) -> LoaderBatches | DeviceBatches:
    """This process's share of every global batch of ``batch_size``, in (seed, epoch) order.

    ``on_device`` None: keep the patches on the device when it is a GPU with room for them.
    """
    if batch_size % ctx.world_size:
        raise UserError(f"--batch-size {batch_size} does not split evenly across {ctx.world_size} processes")
    order = EpochBatches(dataset, batch_size // ctx.world_size, ctx, seed)
    if order.per_epoch == 0:
        raise UserError(f"{dataset.path} has {len(dataset)} patches, fewer than one batch of {batch_size}")
    if on_device is None:
        on_device = fits_on_device(dataset, ctx.device)
    if on_device and isinstance(dataset, PatchDataset) and dataset.in_memory:
        return DeviceBatches(dataset, order, ctx.device)
    return LoaderBatches(dataset, order, workers, pin_memory=ctx.device.type == "cuda")


def to_device(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] on ``device``."""
    x = batch.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
