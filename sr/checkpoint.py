"""Checkpoints: one self-describing dict, written atomically, read with ``weights_only=True``.

Keys: ``format`` (always FORMAT), ``arch`` and ``model_kwargs`` (enough to rebuild the
network), ``scale``, ``color``, ``layout``, ``model`` (the bare state_dict, taken before
any DDP or torch.compile wrapper), and for a run that can continue: ``optimizer``,
``scheduler``, ``epoch`` (epochs finished), ``step`` (batches done in the epoch after
that, 0 at an epoch's end), ``best_psnr``, ``args``. GAN runs add ``discriminator``,
``discriminator_kwargs``, ``d_optimizer`` and ``d_scheduler``.

``load_checkpoint`` checks all of it (``validate_checkpoint``) before any network is
built: a file that would fail later, or would ask for gigabytes, is refused in one line.
"""

from __future__ import annotations

import inspect
import math
import pickle
import zipfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from sr.atomic import atomic_path
from sr.errors import UserError
from sr.interrupts import deferred_interrupt
from sr.models import COLORS, LAYOUTS, MODELS, Discriminator, model_kwargs, rebuild

FORMAT = "sr-checkpoint-v1"

# Far above every network here (the largest, SRResNet x8, has 1.7 M parameters): a checkpoint
# asking for more is a mistake or an attack, not a model. The SRGAN discriminator has its own
# limit: its dense head grows with the square of the patch (23.6 M at 96 px, 89 M at the
# x8 default of 200 px; 500 M is a 470 px patch).
MAX_PARAMETERS = 50_000_000
MAX_DISCRIMINATOR_PARAMETERS = 500_000_000
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
Refuse = Callable[[str, str], NoReturn]  # (field, problem) -> UserError
REQUIRED = ("arch", "model_kwargs", "scale", "color", "layout", "model")


def bare_module(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` so that a reader sees the old file or the new one, never half.

    The data goes to a temporary file in the same folder, is flushed to disk, and then
    replaces ``path`` in one rename (``sr.atomic``); a Ctrl-C waits until that is done.
    """
    state = {"format": FORMAT, **state}
    with deferred_interrupt():  # a KeyboardInterrupt inside torch.save can come out as a RuntimeError
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate one of our checkpoints (tensors on the CPU).

    Raises UserError for a missing, truncated or foreign file, and for any field or tensor
    that does not describe a network of the model table (see ``validate_checkpoint``).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line[:120]})") from None
    validate_checkpoint(state, path)
    return state


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _kind(value: Any) -> str:
    return "a bool" if isinstance(value, bool) else f"a {type(value).__name__}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_kwargs(kwargs: Any, cls: type[nn.Module], required: list[str], field: str, bad: Refuse) -> None:
    """``kwargs`` must be keyword arguments of ``cls``, of the types its signature names,
    with every key in ``required`` present."""
    if not isinstance(kwargs, dict):
        bad(field, f"is {_kind(kwargs)}, not a dict of {cls.__name__}'s keyword arguments")
    params = inspect.signature(cls, eval_str=True).parameters
    for key, value in kwargs.items():
        if key not in params:
            bad(field, f"has {key!r}, which {cls.__name__} does not take (it takes {', '.join(params)})")
        wanted = params[key].annotation
        if wanted is bool:
            ok = isinstance(value, bool)
        elif wanted is int:
            ok = _is_int(value) and value >= 0
        elif wanted is float:
            ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
        elif wanted is str:
            ok = isinstance(value, str)
        else:
            ok = True
        if not ok:
            need = {int: "an integer >= 0", float: "a finite number"}.get(wanted, f"a {getattr(wanted, '__name__', wanted)}")
            bad(f"{field}.{key}", f"is {_show(value)}; {cls.__name__} needs {need}")
    missing = [key for key in required if key not in kwargs]
    if missing:
        bad(field, f"lacks {', '.join(map(repr, missing))} (it must give {', '.join(required)})")


def _build_on_meta(cls: type[nn.Module], kwargs: dict[str, Any], field: str, bad: Refuse, limit: int, limit_name: str) -> nn.Module:
    """The network ``kwargs`` describe, with shapes but no storage: nothing is allocated."""
    try:
        with torch.device("meta"):
            net = cls(**kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        bad(field, f"{_show(kwargs, 200)} do not build {cls.__name__} ({_first_line(exc)})")
    count = sum(p.numel() for p in net.parameters())
    if count > limit:
        bad(field, f"{_show(kwargs, 200)} give {cls.__name__} {count:,} parameters, over the limit of "
                   f"{limit:,} ({limit_name} in sr/checkpoint.py)")
    return net


def _finite(tensor: torch.Tensor) -> bool:
    """No NaN or inf in ``tensor``. One float64 sum in numpy: finite fp32/fp16/bf16 values
    cannot overflow it, a NaN or inf survives it, and it takes no torch thread pool (whose
    OpenMP threads cost more than the work on a busy machine)."""
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        tensor = tensor.float()
    return math.isfinite(tensor.detach().numpy().sum(dtype=np.float64))


def _check_tensors(tensors: Any, net: nn.Module, what: str, field: str, bad: Refuse) -> None:
    """``tensors`` must be exactly ``net``'s state_dict: same names, shapes, and float weights."""
    if not isinstance(tensors, dict):
        bad(field, f"is {_kind(tensors)}, not a state_dict")
    expected = net.state_dict()
    for name in expected:
        if name not in tensors:
            bad(field, f"lacks tensor {name!r}, which {what} has")
    for name, tensor in tensors.items():
        if name not in expected:
            bad(field, f"has tensor {_show(name)}, which {what} does not have")
        want = expected[name]
        if not isinstance(tensor, torch.Tensor):
            bad(field, f"entry {name!r} is {_kind(tensor)}, not a tensor")
        if tuple(tensor.shape) != tuple(want.shape):
            bad(field, f"tensor {name!r} has shape {tuple(tensor.shape)}; {what} needs {tuple(want.shape)}")
        if want.is_floating_point():
            if tensor.dtype not in WEIGHT_DTYPES or tensor.layout != torch.strided:
                bad(field, f"tensor {name!r} is {tensor.dtype}; weights must be float32, float16 or bfloat16")
            if not _finite(tensor):
                bad(field, f"tensor {name!r} holds NaN or infinite values")
        elif tensor.dtype != want.dtype:
            bad(field, f"tensor {name!r} is {tensor.dtype}; {what} needs {want.dtype}")


def validate_checkpoint(state: Any, path: str | Path = "checkpoint") -> None:
    """Check every field of a loaded checkpoint, and its tensors against the network the
    fields describe, before any network is built; the first problem is a one-line UserError
    that names the field.

    The networks are built on the ``meta`` device (shapes, no storage), so a checkpoint that
    describes billions of parameters is refused without allocating them.
    """

    def bad(field: str, problem: str) -> NoReturn:
        raise UserError(f"{path}: checkpoint field {field!r} {problem}")

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a checkpoint of this project (no {FORMAT!r} format tag)")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")

    # The fields, each on its own, then against each other and the model table.
    arch = state["arch"]
    if not isinstance(arch, str) or arch not in MODELS:
        bad("arch", f"is {_show(arch)}, not a known architecture ({', '.join(MODELS)})")
    spec = MODELS[arch]
    layout, color, scale = state["layout"], state["color"], state["scale"]
    if not isinstance(layout, str) or layout not in LAYOUTS:
        bad("layout", f"is {_show(layout)}; it must be one of {', '.join(map(repr, LAYOUTS))} ({arch} is {spec.layout!r})")
    if layout != spec.layout:
        bad("layout", f"is {layout!r}, but {arch} is an {spec.layout!r} model")
    if not isinstance(color, str) or color not in COLORS:
        bad("color", f"is {_show(color)}; it must be one of {', '.join(map(repr, COLORS))}")
    if not _is_int(scale) or scale < 2:
        bad("scale", f"is {_show(scale)}; it must be an integer >= 2")
    for key, accept, need in (("epoch", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                              ("step", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                              ("best_psnr", lambda v: (_is_int(v) or isinstance(v, float)) and not math.isnan(v), "a number"),
                              ("name", lambda v: isinstance(v, str), "a string"),
                              *((k, lambda v: isinstance(v, dict), "a dict") for k in
                                ("args", "optimizer", "scheduler", "scaler", "d_optimizer", "d_scheduler", "d_scaler"))):
        if key in state and not accept(state[key]):
            bad(key, f"is {_show(state[key])}; it must be {need}")

    # The arch's own rules about the scale, from its constructor (SRResNet: 2, 4 or 8).
    table_kwargs = model_kwargs(arch, scale, color)
    try:
        with torch.device("meta"):
            spec.cls(**table_kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        bad("scale", f"is {_show(scale)}, which {arch} cannot do ({_first_line(exc)})")

    kwargs = state["model_kwargs"]
    _check_kwargs(kwargs, spec.cls, list(table_kwargs), "model_kwargs", bad)
    if kwargs["channels"] != COLORS[color]:
        bad("model_kwargs.channels", f"is {kwargs['channels']}, but colour {color!r} has {COLORS[color]}")
    if layout == "lr-hr" and kwargs["scale"] != scale:
        bad("model_kwargs.scale", f"is {kwargs['scale']}, but the checkpoint's scale is {scale}")
    if layout == "upsampled" and kwargs.get("scale", 1) != 1:
        bad("model_kwargs.scale", f"is {kwargs['scale']}; {arch} runs on the upsampled image, at scale 1")
    net = _build_on_meta(spec.cls, kwargs, "model_kwargs", bad, MAX_PARAMETERS, "MAX_PARAMETERS")
    _check_tensors(state["model"], net, f"{arch} {_show(kwargs, 200)}", "model", bad)

    # A GAN run's discriminator, the same way.
    if "discriminator" in state or "discriminator_kwargs" in state:
        for key in ("discriminator", "discriminator_kwargs"):
            if key not in state:
                raise UserError(f"{path}: checkpoint lacks {key} (it has the other half of a GAN run)")
        d_kwargs = state["discriminator_kwargs"]
        _check_kwargs(d_kwargs, Discriminator, ["channels", "patch_size"], "discriminator_kwargs", bad)
        if d_kwargs["channels"] != COLORS[color]:
            bad("discriminator_kwargs.channels", f"is {d_kwargs['channels']}, but colour {color!r} has {COLORS[color]}")
        if d_kwargs["patch_size"] < 1:
            bad("discriminator_kwargs.patch_size", f"is {d_kwargs['patch_size']}; it must be >= 1")
        d_net = _build_on_meta(Discriminator, d_kwargs, "discriminator_kwargs", bad,
                               MAX_DISCRIMINATOR_PARAMETERS, "MAX_DISCRIMINATOR_PARAMETERS")
        _check_tensors(state["discriminator"], d_net, f"Discriminator {_show(d_kwargs, 200)}", "discriminator", bad)


def model_from_checkpoint(state: dict[str, Any], path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (eval mode).

    ``state`` comes from ``load_checkpoint``, which has checked that the weights fit.
    """
    try:
        model = rebuild(state["arch"], state["model_kwargs"])
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: weights do not fit {state['arch']} {state['model_kwargs']} ({str(exc).splitlines()[0][:160]})") from None
    return model.eval()
