"""The parts of the epoch loop that the training scripts do not write out themselves:

    progress = Progress.start(resume)
    with ctrl_c_saves(progress, run, ctx, cfg, trainee, hint):
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            batches = EpochBatches(data, epoch, progress, ctx, ...)
            for lr, hr in batches:                      # on the device, a Ctrl-C held until the body is done
                ... forward, loss, backward, optimizer step: in the script ...
                batches.record(loss=loss)
            scores = evaluate(trainee.scored, ...)       # rank 0
            run.end_epoch(progress, epoch, scores, metrics_row(epoch, batches.result, ...), cfg, trainee)

Batches come in a fixed order per (seed, epoch) and ``progress`` follows every batch, so a run
resumed from ``last.pth``, even one stopped mid-epoch, continues exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from sr import distributed
from sr.data.h5 import EvalImage
from sr.errors import Interrupted, UserError, quoted
from sr.protocol import predict, score
from sr.interrupts import deferred_interrupt
from sr.training.config import RunConfig
from sr.training.loader import DeviceBatches, LoaderBatches, TrainingData, to_device
from sr.training.state import Progress, Trainee, checkpoint

if TYPE_CHECKING:
    from sr.training.run_dir import RunDir

@dataclass(frozen=True)
class EpochResult:
    losses: dict[str, float]  # mean of each loss over the epoch's batches (and processes)
    seconds: float  # the training part of the epoch, evaluation excluded
    samples: int  # trained on in this session (a resumed epoch counts only its rest)


def _fold(sums: dict[str, float], running: dict[str, torch.Tensor], count: int, ctx: distributed.Context | None) -> None:
    """Add the device-side running sums into the epoch's float sums (one sync). With ``ctx``
    under DDP they are averaged over the processes first, so the logged loss is the whole batch's."""
    if running:
        values = torch.stack([v.float() for v in running.values()])
        if ctx is not None and ctx.distributed:
            dist.all_reduce(values)
            values /= ctx.world_size
        for k, v in zip(running, values.tolist()):
            sums[k] = sums.get(k, 0.0) + v
    sums["batches"] = sums.get("batches", 0) + count


def finite_weights(modules: list[nn.Module]) -> bool:
    """Every floating-point parameter and buffer is finite (one sync for all of them)."""
    tensors = [t for m in modules for t in m.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


def _check_finite(progress: Progress, epoch: int, ctx: distributed.Context, watch: list[nn.Module],
                  last_good: Path | None) -> None:
    losses_ok = all(math.isfinite(v) for v in progress.sums.values())
    weights_ok = finite_weights(watch)
    if distributed.all_true(ctx, losses_ok and weights_ok):
        return
    what = "the loss" if not losses_ok else "the weights"
    kept = last_good if last_good is not None and last_good.exists() else None
    tail = f"; the last good checkpoint is {kept}" if kept else "; no checkpoint was written yet"
    raise UserError(f"training diverged: {what} became NaN or infinite at epoch {epoch}, batch {progress.step} "
                    f"(try a lower --lr){tail}")


class EpochBatches:
    """The batches of ``epoch`` that ``progress`` has not done yet, as (lr, hr) float tensors on
    the device, for the script's own training step.

    Each batch is handed out inside a held Ctrl-C (``deferred_interrupt``): the interrupt lands
    after the script's step for it, never inside an update, and ``progress`` has counted the
    batch by then. The script hands back its losses with ``record`` (detached tensors; they
    stay on the device). Every ``check_every`` batches the sums come to the host (averaged over
    processes) and the losses and the weights of ``watch`` are checked for NaN/inf: a diverged
    run stops there. tqdm shows ``epoch: e/E`` with the mean losses. ``result`` after the loop.
    """

    def __init__(self, batches: LoaderBatches | DeviceBatches, epoch: int, progress: Progress, ctx: distributed.Context, *,
                 epochs: int, batch_size: int, channels_last: bool, watch: list[nn.Module], last_good: Path | None = None,
                 check_every: int = 20):
        self.batches, self.epoch, self.progress, self.ctx = batches, epoch, progress, ctx
        self.epochs, self.batch_size, self.channels_last = epochs, batch_size, channels_last
        self.watch, self.last_good, self.check_every = watch, last_good, check_every
        self.running: dict[str, torch.Tensor] = {}
        self.count = 0
        self.result: EpochResult | None = None

    def record(self, **losses: torch.Tensor) -> None:
        """This batch's losses ("loss" first, the one tqdm and metrics.csv show first)."""
        for k, v in losses.items():
            self.running[k] = self.running.get(k, 0.0) + v.detach()  # no sync per batch
        self.count += 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        progress, ctx = self.progress, self.ctx
        self.batches.order.set_epoch(self.epoch, skip=progress.step)
        total, skip = self.batches.per_epoch, progress.step
        bar = tqdm(total=total * self.batch_size, initial=skip * self.batch_size, desc=f"epoch: {self.epoch}/{self.epochs}",
                   unit="it", disable=not ctx.is_main, dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for lr, hr in self.batches:
                with deferred_interrupt():  # a Ctrl-C lands between batches, never inside an update
                    yield to_device(lr, ctx.device, self.channels_last), to_device(hr, ctx.device, self.channels_last)
                    progress.step += 1
                bar.update(self.batch_size)
                if progress.step % self.check_every == 0 or progress.step == total:
                    with deferred_interrupt():
                        _fold(progress.sums, self.running, self.count, ctx)
                        self.running, self.count = {}, 0
                    _check_finite(progress, self.epoch, ctx, self.watch, self.last_good)
                    bar.set_postfix_str(", ".join(f"{k}={v:.6f}" for k, v in progress.means().items()), refresh=False)
        except KeyboardInterrupt:
            _fold(progress.sums, self.running, self.count, None)  # this process's own sums: no collective call after a Ctrl-C
            self.running, self.count = {}, 0
            raise
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        if not progress.sums.get("batches"):
            raise UserError("no training batch ran in this epoch")
        self.result = EpochResult(progress.means(), seconds, (progress.step - skip) * self.batch_size)


@torch.no_grad()
def evaluate(model: nn.Module, images: list[EvalImage], scale: int, input_scale: int, device: torch.device) -> dict[str, float]:
    """Mean scores over the eval images, through the same code as eval.py (fp32).

    ``input_scale``: the model's own enlargement (``ModelSpec.input_scale``).
    """
    was_training = model.training
    model.eval()
    rows = [score(predict(model, im.inputs, input_scale, device), im.hr, scale) for im in images]
    model.train(was_training)
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def score_line(scores: dict[str, float]) -> str:
    extra = f" (rgb psnr: {scores['psnr_rgb']:.2f} ssim: {scores['ssim_rgb']:.4f})" if "psnr_rgb" in scores else ""
    return f"eval psnr: {scores['psnr']:.2f} ssim: {scores['ssim']:.4f}{extra}"


def metrics_row(epoch: int, result: EpochResult, scores: dict[str, float], lr: float) -> dict[str, Any]:
    """One metrics.csv row (fields: ``METRIC_FIELDS``, or the GAN's)."""
    return dict(epoch=epoch, **{k: f"{v:.6f}" for k, v in result.losses.items()}, psnr=f"{scores['psnr']:.4f}",
                ssim=f"{scores['ssim']:.5f}", lr=f"{lr:.3e}", seconds=f"{result.seconds:.1f}",
                samples_per_s=f"{result.samples / result.seconds:.1f}")


def start_line(what: str, cfg: RunConfig, ctx: distributed.Context, model: nn.Module, data: TrainingData,
               batches: LoaderBatches | DeviceBatches) -> str:
    """The run's first line: model, data, device, precision, run folder."""
    params = sum(p.numel() for p in model.parameters())
    processes = f" x{ctx.world_size} processes" if ctx.distributed else ""
    on_device = isinstance(batches, DeviceBatches)
    return (f"{what} {cfg.arch} ({params:,} params) x{cfg.scale} {cfg.color}: "
            f"{data.describe(batches.per_epoch, cfg.batch_size, on_device)}; {ctx.device.type}{processes}, "
            f"{cfg.describe_precision()}; run folder {quoted(cfg.out)}")


@contextmanager
def ctrl_c_saves(progress: Progress, run: RunDir | None, ctx: distributed.Context, cfg: RunConfig, trainee: Trainee,
                 hint: str) -> Iterator[None]:
    """Turn Ctrl-C into a checkpoint of where the run stands, and one line saying how to go on.

    Right after an epoch's checkpoint that checkpoint stands as written; elsewhere last.pth
    gets the checkpoint at ``progress``: (epoch - 1, batches done, partial loss sums). Other
    processes of a DDP run only stop.
    """
    try:
        yield
    except KeyboardInterrupt:
        if not ctx.is_main:
            raise Interrupted("interrupted") from None
        if progress.saved == progress.epoch and progress.step == 0:
            path, where = run.last, f"interrupted at epoch {progress.epoch}, after its checkpoint"
        else:
            path = run.save("last.pth", checkpoint(cfg, trainee, progress))
            where = f"interrupted at epoch {progress.epoch + 1}, batch {progress.step}"
        raise Interrupted(f"{where}; saved {path}; continue with: {hint} --resume {path}") from None
