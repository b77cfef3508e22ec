"""The epoch loop both training scripts share, and what goes around it.

A run lives in one folder: ``args.json``, ``metrics.csv`` (one row per epoch),
``last.pth`` (after every epoch, and on Ctrl-C) and ``best.pth`` (when eval PSNR
improves). Batches come in a fixed order per (seed, epoch), so a run resumed from
``last.pth``, even one stopped mid-epoch, continues exactly where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from sr import distributed
from sr.checkpoint import bare_module, load_checkpoint, save_checkpoint
from sr.cli import non_negative_int, positive_float, positive_int
from sr.data import DEFAULT_SETS, EvalImage, PatchDataset, check_fits, default_h5_path, load_eval_set, prepare_command, read_attrs
from sr.errors import Interrupted, UserError
from sr.interrupts import deferred_interrupt
from sr.evaluation import autocast, predict, score
from sr.losses import content_loss
from sr.models import MODELS, create_model

METRIC_FIELDS = ["epoch", "loss", "psnr", "ssim", "lr", "seconds", "samples_per_s"]


def add_training_args(p: argparse.ArgumentParser, *, epochs: int, batch_size: int, lr: float,
                      out: str = "runs/<arch>_<loss>_x<scale>") -> None:
    """The flags every training script has."""
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"passes over the training patches (default {epochs})")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"global batch: under torchrun it is split evenly across processes (default {batch_size})")
    p.add_argument("--lr", type=positive_float, default=lr, help=f"Adam learning rate, cosine-annealed to 0 over the run (default {lr:g})")
    p.add_argument("--train", type=Path, help="training patches from prepare_h5.py (default: its output for these settings)")
    p.add_argument("--eval", type=Path, help="evaluation images from prepare_h5.py (default: its output for these settings)")
    p.add_argument("--out", type=Path, help=f"run folder (default: {out})")
    p.add_argument("--resume", type=Path, help="continue the run saved in this checkpoint (its settings are kept)")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (same model, any scale whose weights "
                   "have the same shapes, e.g. an x3 SRCNN or FSRCNN for x2); optimizer and schedule start fresh")
    p.add_argument("--seed", type=non_negative_int, default=0, help="initialisation and batch order (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda when available")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="mixed precision: bf16 autocast on CPU and CUDA, or fp16 with --amp-dtype (default on: "
                        "for SRCNN x3 it is 3.3x faster on a 2-core CPU and ends 10 epochs at the same PSNR; "
                        "see the README)")
    p.add_argument("--amp-dtype", choices=("bf16", "fp16"), default="bf16", help="fp16 uses a GradScaler; CUDA only")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on for the CPU, where oneDNN convolutions run faster in it)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model(s)")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes (default 0: the "
                   "patches are in memory; give 2+ when they are read lazily from disk)")
    p.add_argument("--load", choices=("auto", "memory", "lazy"), default="auto",
                   help="read the patch file into memory, or batch by batch from disk (auto: memory if it fits in half the free RAM)")


# Settings that define a run: a resumed run takes these from its checkpoint.
RUN_SETTINGS = ("arch", "loss", "scale", "color", "epochs", "batch_size", "lr", "train", "eval", "seed", "amp", "amp_dtype", "phase",
                "generator", "adv_weight", "d_lr", "perceptual_weight", "vgg_weights", "vgg_layer")


def merge_resumed_args(args: argparse.Namespace, saved: dict[str, Any], parser: argparse.ArgumentParser) -> None:
    """Take the run's settings from its checkpoint; refuse a flag that contradicts them."""
    for key in RUN_SETTINGS:
        if key not in saved:
            continue
        given = getattr(args, key, None)
        given_s = None if given is None else str(given)
        saved_s = None if saved[key] is None else str(saved[key])
        default = parser.get_default(key)
        default_s = None if default is None else str(default)
        if given_s not in (saved_s, default_s):
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} {given} differs from the resumed run's {saved[key]}; a resumed run keeps its settings")
        value = saved[key]
        if key in ("train", "eval", "vgg_weights", "generator") and value is not None:
            value = Path(value)
        setattr(args, key, value)


def load_resumable(path: Path, script: str) -> dict[str, Any]:
    """A checkpoint that ``script`` can continue (weights-only files cannot be resumed)."""
    state = load_checkpoint(path)
    if "optimizer" not in state or "args" not in state:
        raise UserError(f"{path}: holds weights only, not a run to resume")
    if state["args"].get("script") != script:
        raise UserError(f"{path}: is a run of {state['args'].get('script')}.py, not {script}.py")
    return state


def init_weights(model: nn.Module, path: Path, arch: str, color: str) -> None:
    """Load another run's weights into ``model``; they must be of the same model and colour."""
    state = load_checkpoint(path)
    if state["arch"] != arch or state["color"] != color:
        raise UserError(f"--init {path} holds {state['arch']} ({state['color']}), not {arch} ({color})")
    mine = model.state_dict()
    wrong = [k for k, v in state["model"].items() if k not in mine or mine[k].shape != v.shape]
    if wrong or set(mine) != set(state["model"]):
        raise UserError(f"--init {path}: its weights do not fit {arch} at this scale ({', '.join(wrong[:3]) or 'other layers'})")
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})


def json_safe(args: argparse.Namespace) -> dict[str, Any]:
    return json.loads(json.dumps(vars(args), default=str))


class TrainingData:
    """The training patches and eval images of a run, checked against the model."""

    def __init__(self, train: PatchDataset, eval_images: list[EvalImage], train_path: Path, eval_path: Path):
        self.train, self.eval_images, self.train_path, self.eval_path = train, eval_images, train_path, eval_path

    @classmethod
    def open(cls, args: argparse.Namespace, layout: str) -> TrainingData:
        """Fill in ``args.train``/``args.eval`` defaults and load both files.

        Refuses files made for another scale, layout or colour, naming the prepare_h5.py
        call that makes the right one.
        """
        train_set, eval_set = DEFAULT_SETS[args.color]
        hint = prepare_command(args.scale, layout, args.color)
        args.train = Path(args.train or default_h5_path(train_set, args.scale, layout, args.color))
        args.eval = Path(args.eval or default_h5_path(eval_set, args.scale, layout, args.color))
        check_fits(read_attrs(args.train, "train", hint), args.train, args.scale, layout, args.color, hint)
        eval_attrs, images = load_eval_set(args.eval, hint)
        check_fits(eval_attrs, args.eval, args.scale, layout, args.color, hint)
        return cls(PatchDataset(args.train, args.load), images, args.train, args.eval)

    def describe(self, batches: int, batch_size: int) -> str:
        where = "in memory" if self.train.in_memory else "read lazily"
        return (f"{len(self.train)} patches of {self.train_path} ({where}), {batches} batches of {batch_size} per epoch; "
                f"eval on {len(self.eval_images)} images of {self.eval_path}")


class AmpSettings:
    """Precision and memory format of a run, from --amp, --amp-dtype and --channels-last."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.enabled = bool(args.amp)
        self.dtype = torch.float16 if args.amp_dtype == "fp16" else torch.bfloat16
        if self.enabled and self.dtype == torch.float16 and device.type != "cuda":
            raise UserError("--amp-dtype fp16 needs CUDA; on the CPU use bf16")
        self.device = device
        self.scaler = self.enabled and self.dtype == torch.float16  # fp16 gradients underflow without loss scaling
        self.channels_last = device.type == "cpu" if args.channels_last is None else bool(args.channels_last)

    def autocast(self):
        return autocast(self.device, self.enabled, self.dtype)

    def describe(self) -> str:
        precision = f"{'fp16' if self.dtype == torch.float16 else 'bf16'} autocast" if self.enabled else "fp32"
        return precision + (", channels-last" if self.channels_last else "")



class RunDir:
    """The run folder and its files (only rank 0 writes)."""

    def __init__(self, path: Path, resuming: bool):
        self.path = Path(path)
        if not resuming and (self.path / "last.pth").exists():
            raise UserError(f"{self.path} already holds a run; continue it with --resume {self.path / 'last.pth'}, "
                            "or choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to the run folder {self.path}: {exc.strerror or exc}") from None
        self.metrics = self.path / "metrics.csv"

    def write_args(self, args: argparse.Namespace) -> None:
        tmp = self.path / ".args.json.tmp"
        tmp.write_text(json.dumps(json_safe(args), indent=2) + "\n")
        os.replace(tmp, self.path / "args.json")

    def keep_metrics_until(self, epoch: int, fields: list[str]) -> None:
        """Drop rows after ``epoch`` (left by a run resumed from an earlier checkpoint)."""
        rows = []
        if self.metrics.exists():
            with open(self.metrics, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= epoch]
        tmp = self.path / ".metrics.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics)

    def append_metrics(self, row: dict[str, Any], fields: list[str]) -> None:
        with open(self.metrics, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=fields, extrasaction="ignore").writerow(row)


class EpochBatches(Sampler):
    """One process's batches for an epoch, in an order fixed by (seed, epoch).

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

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.skip, None)

    def __len__(self) -> int:
        return len(self.batches) - self.skip


def make_loader(dataset: PatchDataset, batch_size: int, ctx: distributed.Context, seed: int, workers: int):
    """A DataLoader whose every item is a whole (lr, hr) uint8 batch of this process."""
    if batch_size % ctx.world_size:
        raise UserError(f"--batch-size {batch_size} does not split evenly across {ctx.world_size} processes")
    per_rank = batch_size // ctx.world_size
    batches = EpochBatches(dataset, per_rank, ctx, seed)
    if len(batches.batches) == 0:
        raise UserError(f"{dataset.path} has {len(dataset)} patches, fewer than one batch of {batch_size}")
    loader = DataLoader(dataset, sampler=batches, batch_size=None, num_workers=workers,
                        pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0)
    return loader, batches


def to_device(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] on ``device``."""
    x = batch.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate(model: nn.Module, images: list[EvalImage], scale: int, layout: str, device: torch.device) -> dict[str, float]:
    """Mean scores over the eval images, through the same code as eval.py (fp32)."""
    was_training = model.training
    model.eval()
    model_scale = scale if layout == "lr-hr" else 1
    rows = [score(predict(model, im.inputs, model_scale, device), im.hr, scale) for im in images]
    model.train(was_training)
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing from the initial lr to 0 over the run, stepped every batch."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=0.0)


def prepare_modules(modules: list[nn.Module], ctx: distributed.Context, channels_last: bool, compile_: bool):
    """Move to the device; return the versions to call in training (DDP and/or compiled)."""
    wrapped = []
    for m in modules:
        m.to(ctx.device)
        if channels_last:
            m.to(memory_format=torch.channels_last)
        w = m
        if ctx.distributed:
            w = nn.parallel.DistributedDataParallel(m, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if compile_:
            w = torch.compile(w)
        wrapped.append(w)
    return wrapped


class EpochLoop:
    """Runs epochs: tqdm bar ``epoch: e/E`` with ``loss=``, eval, checkpoints and CSV.

    ``step(lr, hr)`` trains on one batch and returns detached scalar losses (the key
    ``loss`` first); ``state(epoch_done, step)`` returns the checkpoint dict for that point.
    """

    def __init__(self, *, ctx, run: RunDir | None, loader, batches: EpochBatches, epochs: int, samples_per_step: int,
                 step: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
                 state: Callable[[int, int, dict], dict[str, Any]], evaluate: Callable[[], dict[str, float]],
                 current_lr: Callable[[], float], best_psnr: float = -math.inf, fields: list[str] | None = None,
                 resume_hint: str = "", check_every: int = 20):
        self.ctx, self.run, self.loader, self.batches = ctx, run, loader, batches
        self.epochs, self.samples_per_step = epochs, samples_per_step
        self.step, self.state, self.evaluate, self.current_lr = step, state, evaluate, current_lr
        self.best_psnr = best_psnr
        self.fields = fields or METRIC_FIELDS
        self.resume_hint, self.check_every = resume_hint, check_every
        self.finished_epoch = 0  # the last epoch whose checkpoint and CSV row are written

    @staticmethod
    def default_fields() -> list[str]:
        return list(METRIC_FIELDS)

    def _save(self, name: str, state: dict) -> Path:
        path = self.run.path / name
        save_checkpoint(path, state)
        return path

    def fit(self, start_epoch: int = 1, start_step: int = 0, partial: dict | None = None) -> dict[str, float]:
        last = {}
        for epoch in range(start_epoch, self.epochs + 1):
            skip = start_step if epoch == start_epoch else 0
            sums = dict(partial) if (partial and epoch == start_epoch) else {}
            try:
                last = self._epoch(epoch, skip, sums)
            except KeyboardInterrupt:  # between the epoch's checkpoint and the next epoch's first batch
                if self.ctx.is_main and self.finished_epoch:
                    self._interrupted_after(self.finished_epoch)
                raise
        return last

    def _epoch(self, epoch: int, skip: int, sums: dict) -> dict[str, Any]:
        self.batches.set_epoch(epoch, skip)
        total_steps = len(self.batches.batches)
        done, running, count = skip, {}, 0
        bar = tqdm(total=total_steps * self.samples_per_step, initial=skip * self.samples_per_step,
                   desc=f"epoch: {epoch}/{self.epochs}", unit="it", disable=not self.ctx.is_main, dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for lr, hr in self.loader:
                for k, v in self.step(lr, hr).items():
                    running[k] = running.get(k, 0.0) + v  # stays on the device: no sync per batch
                done, count = done + 1, count + 1
                bar.update(self.samples_per_step)
                if done % self.check_every == 0 or done == total_steps:
                    self._fold(running, count, sums)
                    running, count = {}, 0
                    self._check_finite(epoch, done, sums)
                    bar.set_postfix_str(", ".join(f"{k}={v:.6f}" for k, v in self._means(sums).items()), refresh=False)
            bar.close()
            seconds = time.perf_counter() - start
            if not sums.get("batches"):
                raise UserError("no training batch ran in this epoch")
            row = self._finish(epoch, sums, seconds, (done - skip) * self.samples_per_step) if self.ctx.is_main else {}
        except KeyboardInterrupt:
            bar.close()
            if self.finished_epoch == epoch:  # Ctrl-C after the epoch's checkpoint: it stands as written
                self._interrupted_after(epoch)
            self._fold(running, count, sums)
            self._interrupted(epoch, done, sums)
        distributed.barrier(self.ctx)  # the other ranks wait while rank 0 evaluates and saves
        return row

    def _finish(self, epoch: int, sums: dict, seconds: float, samples: int) -> dict[str, Any]:
        """Rank 0 at an epoch's end: evaluate, print, checkpoint, log."""
        scores = self.evaluate()
        extra = f" (rgb psnr: {scores['psnr_rgb']:.2f} ssim: {scores['ssim_rgb']:.4f})" if "psnr_rgb" in scores else ""
        print(f"eval psnr: {scores['psnr']:.2f} ssim: {scores['ssim']:.4f}{extra}", flush=True)
        improved = scores["psnr"] > self.best_psnr
        if improved:
            self.best_psnr = scores["psnr"]
        state = self.state(epoch, 0, {})
        state.update(best_psnr=self.best_psnr, scores=scores)
        row = dict(epoch=epoch, **{k: f"{v:.6f}" for k, v in self._means(sums).items()}, psnr=f"{scores['psnr']:.4f}",
                   ssim=f"{scores['ssim']:.5f}", lr=f"{self.current_lr():.3e}", seconds=f"{seconds:.1f}",
                   samples_per_s=f"{samples / seconds:.1f}")
        with deferred_interrupt():  # last.pth, best.pth and the CSV row agree, whenever Ctrl-C comes
            self._save("last.pth", state)
            if improved:
                self._save("best.pth", state)
            self.run.append_metrics(row, self.fields)
            self.finished_epoch = epoch
        return row

    @staticmethod
    def _means(sums: dict) -> dict[str, float]:
        return {k: v / sums["batches"] for k, v in sums.items() if k != "batches"}

    @staticmethod
    def _fold(running: dict, count: int, sums: dict) -> None:
        """Add the device-side running sums into the epoch's float sums (one sync)."""
        for k, v in running.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        sums["batches"] = sums.get("batches", 0) + count

    def _check_finite(self, epoch: int, done: int, sums: dict) -> None:
        finite = all(math.isfinite(v) for v in self._means(sums).values())
        if not distributed.all_true(self.ctx, finite):
            where = f"epoch {epoch}, batch {done}"
            kept = self.run.path / "last.pth" if self.run and (self.run.path / "last.pth").exists() else None
            tail = f"; the last good checkpoint is {kept}" if kept else "; no checkpoint was written yet"
            raise UserError(f"training diverged: the loss became NaN or infinite at {where} (try a lower --lr){tail}")

    def _interrupted_after(self, epoch: int):
        path = self.run.path / "last.pth"
        raise Interrupted(f"interrupted at epoch {epoch}, after its checkpoint; saved {path}; continue with: "
                          f"{self.resume_hint} --resume {path}")

    def _interrupted(self, epoch: int, done: int, sums: dict):
        if self.ctx.is_main:
            state = self.state(epoch - 1, done, sums)
            state["best_psnr"] = self.best_psnr
            path = self._save("last.pth", state)
            raise Interrupted(f"interrupted at epoch {epoch}, batch {done}; saved {path}; continue with: "
                              f"{self.resume_hint} --resume {path}")
        raise Interrupted("interrupted")


class Session:
    """Everything a training script sets up before its epoch loop, in one place.

    ``start`` resolves a resume, the data files, the run folder and the precision, and
    builds the loader; the script then makes its model(s), optimizer(s) and step.
    """

    def __init__(self, args, ctx, script, spec, resume, data, run, amp, loader, batches):
        self.args, self.ctx, self.script, self.spec = args, ctx, script, spec
        self.resume, self.data, self.run, self.amp = resume, data, run, amp
        self.loader, self.batches = loader, batches

    @classmethod
    def start(cls, args: argparse.Namespace, ctx: distributed.Context, script: str, parser: argparse.ArgumentParser,
              default_out: Callable[[argparse.Namespace], Path], before_data: Callable[[dict | None], None] | None = None,
              resume: dict[str, Any] | None = None) -> Session:
        """``resume``: the checkpoint of ``args.resume`` when the caller has read it already."""
        if args.resume:
            resume = resume or load_resumable(args.resume, script)
            merge_resumed_args(args, resume["args"], parser)
            args.out = args.out or args.resume.parent
        if before_data:
            before_data(resume)  # e.g. take arch and scale from a generator checkpoint
        spec = MODELS[args.arch]
        args.color = args.color or spec.color
        data = TrainingData.open(args, spec.layout)
        args.out = Path(args.out or default_out(args))
        run = RunDir(args.out, resuming=resume is not None) if ctx.is_main else None
        amp = AmpSettings(args, ctx.device)
        args.machine = distributed.describe_machine(ctx)  # recorded in args.json and checkpoints
        loader, batches = make_loader(data.train, args.batch_size, ctx, args.seed, args.workers)
        return cls(args, ctx, script, spec, resume, data, run, amp, loader, batches)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches.batches)

    def create_generator(self) -> tuple[nn.Module, dict[str, Any]]:
        """The model ``--arch`` names, seeded; weights from the checkpoint when resuming."""
        torch.manual_seed(self.args.seed)
        try:
            model, kwargs = create_model(self.args.arch, self.args.scale, self.args.color)
        except ValueError as exc:
            raise UserError(f"--arch {self.args.arch}: {exc}") from None
        if self.resume:
            model.load_state_dict(self.resume["model"])
        elif self.args.init:
            init_weights(model, self.args.init, self.args.arch, self.args.color)
        return model, kwargs

    def optimizer(self, model: nn.Module, lr: float, key: str = "") -> tuple:
        """Adam, its cosine schedule over the whole run and a GradScaler (active for fp16),
        restored from the checkpoint (entries ``optimizer``/``d_optimizer``, ...) when resuming."""
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = cosine_schedule(opt, self.args.epochs * self.steps_per_epoch)
        scaler = torch.amp.GradScaler(self.ctx.device.type, enabled=self.amp.scaler)
        if self.resume:
            opt.load_state_dict(self.resume[f"{key}optimizer"])
            sched.load_state_dict(self.resume[f"{key}scheduler"])
            scaler.load_state_dict(self.resume.get(f"{key}scaler", {}))
        return opt, sched, scaler

    def model_state(self, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The part of a checkpoint that eval.py needs: what the network is, and its weights."""
        return dict(arch=self.args.arch, model_kwargs=kwargs, scale=self.args.scale, color=self.args.color,
                    layout=self.spec.layout, model=bare_module(model).state_dict())

    def fit(self, model: nn.Module, step, state, describe: str, fields: list[str] | None = None) -> dict[str, Any]:
        """Print the run's summary line, then run the epochs; returns the bare model and best PSNR."""
        args, ctx = self.args, self.ctx
        if ctx.is_main:
            self.run.write_args(args)
            fields = fields or EpochLoop.default_fields()
            self.run.keep_metrics_until(self.resume["epoch"] if self.resume else 0, fields)
            params = sum(p.numel() for p in model.parameters())
            print(f"{describe} {args.arch} ({params:,} params) x{args.scale} {args.color}: "
                  f"{self.data.describe(self.steps_per_epoch, args.batch_size)}; {ctx.device.type}"
                  f"{f' x{ctx.world_size} processes' if ctx.distributed else ''}, {self.amp.describe()}; run folder {args.out}",
                  flush=True)
        loop = EpochLoop(
            ctx=ctx, run=self.run, loader=self.loader, batches=self.batches, epochs=args.epochs,
            samples_per_step=args.batch_size, step=step, fields=fields,
            state=lambda epoch, done, partial: dict(state(), epoch=epoch, step=done, partial=partial,
                                                    args=dict(json_safe(args), script=self.script)),
            current_lr=lambda: step.current_lr(),
            evaluate=lambda: evaluate(model, self.data.eval_images, args.scale, self.spec.layout, ctx.device),
            best_psnr=self.resume.get("best_psnr", -math.inf) if self.resume else -math.inf,
            resume_hint=f"python {self.script}.py",
        )
        start_epoch, start_step = (self.resume["epoch"] + 1, self.resume["step"]) if self.resume else (1, 0)
        loop.fit(start_epoch, start_step, self.resume.get("partial") if self.resume else None)
        return dict(model=bare_module(model), best_psnr=loop.best_psnr, out=Path(args.out))


def train_content(session: Session, describe: str, fields: list[str] | None = None) -> dict[str, Any]:
    """Supervised training with the content loss ``--loss``: train_srcnn.py, and the
    pretrain phase of train_srgan.py."""
    args, ctx = session.args, session.ctx
    model, kwargs = session.create_generator()
    (net,) = prepare_modules([model], ctx, session.amp.channels_last, args.compile)
    optimizer, scheduler, scaler = session.optimizer(model, args.lr)
    step = ContentStep(net, content_loss(args.loss), optimizer, scheduler, scaler, session.amp, ctx.device)

    def state() -> dict[str, Any]:
        return dict(session.model_state(model, kwargs), optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), scaler=scaler.state_dict())

    return session.fit(model, step, state, describe, fields)


class ContentStep:
    """One supervised step: forward under autocast, content loss in fp32, Adam, schedule."""

    def __init__(self, net: nn.Module, criterion: nn.Module, optimizer, scheduler, scaler, amp: AmpSettings, device):
        self.net, self.criterion, self.optimizer, self.scheduler, self.scaler = net, criterion, optimizer, scheduler, scaler
        self.amp, self.device = amp, device

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        lr, hr = to_device(lr, self.device, self.amp.channels_last), to_device(hr, self.device, self.amp.channels_last)
        with self.amp.autocast():
            pred = self.net(lr)
        loss = self.criterion(pred.float(), hr)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {"loss": loss.detach()}

    def current_lr(self) -> float:
        return self.scheduler.get_last_lr()[0]
