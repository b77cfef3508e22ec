"""What updates a network besides its loss: the optimizer bundle every network of a run gets
(Adam, its cosine schedule, its GradScaler), its parameter groups, and the weights' moving average."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sr.checkpoint import bare_module
from sr.errors import UserError
from sr.precision import Precision


def parameter_groups(module: nn.Module, lr: float, last_layer_lr: float = 1.0) -> list[dict[str, Any]]:
    """Adam's parameter groups: the last layer that has weights (FSRCNN's deconvolution, SRCNN's
    reconstruction) at ``last_layer_lr`` times the rate, everything else at the rate. One group
    when the factor is 1, so runs without it keep the optimizer state layout they always had."""
    if last_layer_lr == 1.0:
        return [{"params": list(module.parameters()), "lr": lr}]
    last = [m for m in module.modules() if not list(m.children()) and list(m.parameters(recurse=False))][-1]
    tail = {id(p) for p in last.parameters()}
    # Each group anneals from its own rate (the cosine schedule scales every group's initial lr).
    return [{"params": [p for p in module.parameters() if id(p) not in tail], "lr": lr},
            {"params": list(last.parameters()), "lr": lr * last_layer_lr}]


@dataclass
class Optim:
    """A network's Adam, its cosine schedule from ``lr`` to 0 over the whole run (stepped every
    batch), and its GradScaler (active for fp16 only)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    @classmethod
    def adam(cls, module: nn.Module, lr: float, total_steps: int, precision: Precision,
             resume: dict[str, Any] | None = None, prefix: str = "", last_layer_lr: float = 1.0) -> Optim:
        """Fresh, or restored from the checkpoint entries ``{prefix}optimizer``, ``{prefix}scheduler``, ``{prefix}scaler``.

        ``last_layer_lr``: the learning rate of the network's last layer, as a multiple of ``lr``
        (SRCNN and FSRCNN train their last layer at a tenth of the others' rate).
        """
        optimizer = torch.optim.Adam(parameter_groups(module, lr, last_layer_lr), lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=0.0)
        scaler = torch.amp.GradScaler(precision.device_type, enabled=precision.needs_grad_scaler)
        if resume:
            optimizer.load_state_dict(resume[f"{prefix}optimizer"])
            scheduler.load_state_dict(resume[f"{prefix}scheduler"])
            scaler.load_state_dict(resume.get(f"{prefix}scaler", {}))
        return cls(optimizer, scheduler, scaler)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self) -> None:
        """The optimizer step (skipped by the scaler when fp16 gradients overflowed)."""
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def current_lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state(self, prefix: str = "") -> dict[str, Any]:
        return {f"{prefix}optimizer": self.optimizer.state_dict(), f"{prefix}scheduler": self.scheduler.state_dict(),
                f"{prefix}scaler": self.scaler.state_dict()}


class WeightAverage:
    """An exponential moving average of a network's weights (BasicSR's ``ema_decay``), by
    ``torch.optim.swa_utils``; buffers are averaged too. ``module`` is the averaged network.

    In a checkpoint the average is ``model`` (what eval.py and --init read) and the trained
    weights are ``trained_model``, with ``ema_updates``: a resumed run restores both.
    """

    def __init__(self, model: nn.Module, decay: float, resume: dict[str, Any] | None = None):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        if resume:
            if "trained_model" not in resume:
                raise UserError("--resume: this checkpoint was written without --ema, so it has no weight average to go on with")
            model.load_state_dict(resume["trained_model"])
            self.averaged.module.load_state_dict(resume["model"])
            self.averaged.n_averaged.fill_(int(resume["ema_updates"]))

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    def update(self, net: nn.Module) -> None:
        self.averaged.update_parameters(bare_module(net))

    def state(self, model: nn.Module) -> dict[str, Any]:
        return {"trained_model": bare_module(model).state_dict(), "ema_updates": int(self.averaged.n_averaged)}
