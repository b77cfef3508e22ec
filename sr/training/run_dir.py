"""The run folder and its files; only rank 0 writes them.

``args.json`` (the settled configuration), ``metrics.csv`` (one row per epoch), ``last.pth``
(after every epoch, and on Ctrl-C) and ``best.pth`` (when eval PSNR improves). No checkpoint
with NaN or infinite weights or losses is ever written: the one before it stays.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sr.atomic import atomic_path, atomic_write_text
from sr.checkpoint import save_checkpoint
from sr.errors import UserError
from sr.interrupts import deferred_interrupt
from sr.training.state import Progress, Trainee, checkpoint

if TYPE_CHECKING:
    from sr.training.config import RunConfig

METRIC_FIELDS = ["epoch", "loss", "psnr", "ssim", "lr", "seconds", "samples_per_s"]


def finite_state(state: dict[str, Any]) -> bool:
    """The checkpoint's weights (generator, and discriminator if any) and partial loss sums are all finite."""
    for part in ("model", "discriminator"):
        for value in state.get(part, {}).values():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return False
    return all(math.isfinite(v) for v in state.get("partial", {}).values())


class RunDir:
    """The run folder: refuses to start a second run in one, and must be writable."""

    def __init__(self, path: Path, resuming: bool, fields: list[str] | None = None):
        self.path = Path(path)
        self.fields = fields or METRIC_FIELDS
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

    @property
    def last(self) -> Path:
        return self.path / "last.pth"

    def begin(self, record: dict[str, Any], epochs_done: int) -> None:
        """Write args.json; drop metrics rows after ``epochs_done`` (left by a run resumed from an earlier checkpoint)."""
        atomic_write_text(self.path / "args.json", json.dumps(record, indent=2) + "\n")
        rows = []
        if self.metrics.exists():
            with open(self.metrics, newline="") as f:
                rows = [r for r in csv.DictReader(f) if (r["epoch"] or "").isdigit() and int(r["epoch"]) <= epochs_done]
        with atomic_path(self.metrics) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Add one row: the file is rewritten whole and renamed into place (a few KB), so a
        crash never leaves half a row."""
        text = self.metrics.read_text() if self.metrics.exists() else ""
        with atomic_path(self.metrics) as tmp, open(tmp, "w", newline="") as f:
            f.write(text)
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if not text:
                writer.writeheader()
            writer.writerow(row)

    def save(self, name: str, state: dict[str, Any]) -> Path:
        """Write a checkpoint, unless its weights or losses went NaN or infinite (then the run stops)."""
        path = self.path / name
        if not finite_state(state):
            where = f"epoch {state['epoch'] + 1}, batch {state['step']}" if state["step"] else f"the end of epoch {state['epoch']}"
            kept = f"the last good checkpoint is {self.last}" if self.last.exists() else "no checkpoint was written yet"
            raise UserError(f"training diverged: the weights became NaN or infinite by {where} (try a lower --lr); "
                            f"{name} was not written, {kept}")
        save_checkpoint(path, state)
        return path

    def end_epoch(self, progress: Progress, epoch: int, scores: dict[str, float], row: dict[str, Any], cfg: RunConfig,
                  trainee: Trainee) -> None:
        """Epoch ``epoch`` is done: last.pth, best.pth when the PSNR improved, and the CSV row.

        The three are written together and ``progress`` moves to the epoch's end with them: a
        Ctrl-C waits until all are, so they always agree. last.pth comes last: a run killed
        before it resumes from the epoch before, drops the new CSV row and redoes the epoch,
        writing the same best.pth again.
        """
        improved = scores["psnr"] > progress.best_psnr
        done = Progress(epoch, 0, {}, scores["psnr"] if improved else progress.best_psnr)
        state = checkpoint(cfg, trainee, done, scores)
        with deferred_interrupt():
            if improved:
                self.save("best.pth", state)
            self.append_metrics(row)
            self.save("last.pth", state)
            progress.finish_epoch(epoch, done.best_psnr, saved=True)
