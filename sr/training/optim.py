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


def check_optimizer_state(saved: Any, optimizer: torch.optim.Optimizer, module: nn.Module, what: str) -> None:
    """``saved`` (an optimizer's state_dict from a checkpoint) must fit ``optimizer``, made for ``module``:
    as many groups and parameters, and every state tensor of its parameter's shape. Another run's
    state loads into torch's optimizer without complaint when the counts agree, and fails inside
    the first step; this says so at --resume, in one line."""
    names = {id(p): name for name, p in module.named_parameters()}
    arch = type(module).__name__
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    state = saved.get("state") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(state, dict) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise UserError(f"--resume: {what} is not an optimizer's state (no param_groups and state)")
    if len(groups) != len(optimizer.param_groups):
        raise UserError(f"--resume: {what} has {len(groups)} parameter group(s); {arch}'s has {len(optimizer.param_groups)} "
                        "(--last-layer-lr makes two): it comes from another run")
    for number, (group, mine) in enumerate(zip(groups, optimizer.param_groups), 1):
        if len(group["params"]) != len(mine["params"]):
            raise UserError(f"--resume: {what} has {len(group['params'])} parameters in its group {number}; "
                            f"{arch}'s has {len(mine['params'])}: it comes from another run")
        for index, param in zip(group["params"], mine["params"]):
            for tensor in (state.get(index) or {}).values():
                if isinstance(tensor, torch.Tensor) and tensor.dim() > 0 and tensor.shape != param.shape:
                    raise UserError(f"--resume: {what} holds state of shape {tuple(tensor.shape)} for {arch}'s parameter "
                                    f"{names.get(id(param), '?')!r} of shape {tuple(param.shape)}: it comes from another run")


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
            saved = resume[f"{prefix}optimizer"]
            check_optimizer_state(saved, optimizer, module, f"the checkpoint's {prefix}optimizer")
            optimizer.load_state_dict(saved)
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
