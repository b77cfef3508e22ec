"""Checkpoints: one self-describing dict, written atomically, read with ``weights_only=True``.

Keys: ``format`` (always FORMAT), ``arch`` and ``model_kwargs`` (enough to rebuild the
network), ``scale``, ``color``, ``layout``, ``model`` (the bare state_dict, taken before
any DDP or torch.compile wrapper), and for a run that can continue: ``optimizer``,
``scheduler``, ``epoch`` (epochs finished), ``step`` (batches done in the epoch after
that, 0 at an epoch's end), ``best_psnr``, ``args``. GAN runs add ``discriminator``,
``discriminator_kwargs``, ``d_optimizer`` and ``d_scheduler``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr.errors import UserError
from sr.interrupts import deferred_interrupt
from sr.models import MODELS, rebuild

FORMAT = "sr-checkpoint-v1"


def bare_module(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` so that a reader sees the old file or the new one, never half.

    The data goes to a temporary file in the same folder, is flushed to disk, and then
    replaces ``path`` in one rename.
    """
    path = Path(path)
    state = {"format": FORMAT, **state}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is an ordinary file
    except OSError as exc:
        raise UserError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    try:
        with deferred_interrupt():  # a Ctrl-C lands after the rename, never inside torch.save
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate one of our checkpoints (tensors on the CPU).

    Raises UserError for a missing, truncated or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a checkpoint of this project (no {FORMAT!r} format tag)")
    missing = [k for k in ("arch", "model_kwargs", "scale", "color", "layout", "model") if k not in state]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if state["arch"] not in MODELS:
        raise UserError(f"{path}: unknown architecture {state['arch']!r} (known: {', '.join(MODELS)})")
    return state


def model_from_checkpoint(state: dict[str, Any], path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (eval mode)."""
    try:
        model = rebuild(state["arch"], state["model_kwargs"])
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: weights do not fit {state['arch']} {state['model_kwargs']} ({str(exc).splitlines()[0][:160]})") from None
    return model.eval()


def training_state(*, arch: str, model_kwargs: dict[str, Any], scale: int, color: str, layout: str, model: nn.Module,
                   optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, epoch: int, step: int,
                   partial: dict[str, float], best_psnr: float, args: dict[str, Any], scores: dict[str, float] | None = None,
                   **extra: Any) -> dict[str, Any]:
    """A training run's checkpoint, the one place it is put together.

    What eval.py needs (the network: ``arch``, ``model_kwargs``, ``scale``, ``color``, ``layout``,
    and ``model``, whose bare state_dict is taken here, inside any DDP or torch.compile wrapper);
    what a resume needs (``optimizer``, ``scheduler``, ``scaler``; ``epoch`` epochs finished,
    ``step`` batches of the next with loss sums ``partial``; ``best_psnr``); the run's ``args``;
    ``scores`` at an epoch's end. ``extra``: more entries, e.g. a GAN's discriminator and its optimizer.
    """
    state = dict(arch=arch, model_kwargs=model_kwargs, scale=scale, color=color, layout=layout,
                 model=bare_module(model).state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                 scaler=scaler.state_dict(), epoch=epoch, step=step, partial=dict(partial), best_psnr=best_psnr, args=args,
                 **extra)
    if scores is not None:
        state["scores"] = scores
    return state
