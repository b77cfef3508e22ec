"""Where a run stands (``Progress``), what it trains (``Trainee``), and the checkpoint made of both.

    trainee = Trainee(model, kwargs, optim, ema)            # + discriminator, its kwargs and Optim for the GAN phase
    state = checkpoint(cfg, trainee, progress, scores)      # the one place a run's checkpoint is put together

Each fact is stored once: the settings (precision included) in ``args``, the network's
description at the top level where eval.py reads it. ``resume_state`` reads what a checkpoint
holds back into the objects, old checkpoints included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from sr.checkpoint import bare_module
from sr.training.optim import Optim, WeightAverage

if TYPE_CHECKING:
    from sr.training.config import RunConfig


@dataclass
class Progress:
    """Where a run stands; the loop moves it on, a Ctrl-C saves it.

    ``epoch`` epochs are finished; ``step`` batches of the next one are done, with loss sums
    ``sums`` (their count under "batches"). ``saved``: the epoch whose end this process wrote
    to last.pth (None before it wrote one).
    """

    epoch: int = 0
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    best_psnr: float = -math.inf
    saved: int | None = None

    @classmethod
    def start(cls, resume: dict[str, Any] | None) -> Progress:
        if not resume:
            return cls()
        return cls(resume["epoch"], resume["step"], dict(resume.get("partial") or {}), resume.get("best_psnr", -math.inf))

    def means(self) -> dict[str, float]:
        return {k: v / self.sums["batches"] for k, v in self.sums.items() if k != "batches"}

    def finish_epoch(self, epoch: int, best_psnr: float | None = None, saved: bool = False) -> None:
        self.epoch, self.step, self.sums = epoch, 0, {}
        self.best_psnr = self.best_psnr if best_psnr is None else best_psnr
        self.saved = epoch if saved else self.saved


@dataclass
class Trainee:
    """The networks a run trains, with their optimizers; the bare modules, never their wrappers.

    ``ema``: the weights' moving average (--ema), which is then the run's model: scored, kept
    as best.pth, exported. The GAN phase adds the discriminator, its keyword arguments and Optim.
    """

    model: nn.Module
    model_kwargs: dict[str, Any]
    optim: Optim
    ema: WeightAverage | None = None
    discriminator: nn.Module | None = None
    discriminator_kwargs: dict[str, Any] | None = None
    d_optim: Optim | None = None

    @property
    def scored(self) -> nn.Module:
        """The weights that are evaluated and saved as the model."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def watched(self) -> list[nn.Module]:
        """The networks checked for NaN/inf while training."""
        return [self.model] + ([self.discriminator] if self.discriminator is not None else [])


def checkpoint(cfg: RunConfig, trainee: Trainee, progress: Progress, scores: dict[str, float] | None = None) -> dict[str, Any]:
    """A run's checkpoint at ``progress``: what eval.py needs (``arch``, ``model_kwargs``, ``scale``,
    ``color``, ``layout``, ``model``), what a resume needs (optimizers and schedules, ``epoch``,
    ``step``, partial loss sums, ``best_psnr``), the settings (``args``), and ``scores`` at an epoch's end."""
    state: dict[str, Any] = dict(
        arch=cfg.arch, model_kwargs=trainee.model_kwargs, scale=cfg.scale, color=cfg.color, layout=cfg.layout,
        model=bare_module(trainee.scored).state_dict(), **trainee.optim.state(),
        epoch=progress.epoch, step=progress.step, partial=dict(progress.sums), best_psnr=progress.best_psnr,
        args=cfg.record())
    if trainee.ema is not None:
        state.update(trainee.ema.state(trainee.model))
    if trainee.discriminator is not None:
        state.update(discriminator=bare_module(trainee.discriminator).state_dict(),
                     discriminator_kwargs=trainee.discriminator_kwargs, **trainee.d_optim.state("d_"),
                     generator_source=str(getattr(cfg, "generator", None)))
    if scores is not None:
        state["scores"] = scores
    return state
