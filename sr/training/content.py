"""Supervised training with a content loss (train_srcnn.py, and train_srgan.py's pretrain
phase), and the optimizer bundle every network of a run gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sr.precision import Precision
from sr.training.loader import to_device


@dataclass
class Optim:
    """A network's Adam, its cosine schedule from ``lr`` to 0 over the whole run (stepped every
    batch), and its GradScaler (active for fp16 only)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    @classmethod
    def adam(cls, module: nn.Module, lr: float, total_steps: int, precision: Precision,
             resume: dict[str, Any] | None = None, prefix: str = "") -> Optim:
        """Fresh, or restored from the checkpoint entries ``{prefix}optimizer``, ``{prefix}scheduler``, ``{prefix}scaler``."""
        optimizer = torch.optim.Adam(module.parameters(), lr=lr)
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


class ContentStep:
    """One supervised step: forward under autocast, content loss in fp32, Adam, schedule."""

    def __init__(self, net: nn.Module, criterion: nn.Module, optim: Optim, precision: Precision, device: torch.device):
        self.net, self.criterion, self.optim = net, criterion, optim
        self.precision, self.device = precision, device

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        lr = to_device(lr, self.device, self.precision.channels_last)  # (N, C, h, w) in [0, 1]
        hr = to_device(hr, self.device, self.precision.channels_last)  # (N, C, H, W)
        with self.precision.autocast():
            pred = self.net(lr)
        loss = self.criterion(pred.float(), hr)
        self.optim.optimizer.zero_grad(set_to_none=True)
        self.optim.backward(loss)
        self.optim.step()
        self.optim.scheduler.step()
        return {"loss": loss.detach()}

    def current_lr(self) -> float:
        return self.optim.current_lr()
