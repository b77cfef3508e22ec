"""A checkpoint's fields, each checked, then against each other and against the network they describe.

``validate_checkpoint`` checks a loaded checkpoint dict (``sr.checkpoint.load_checkpoint`` calls it
twice: on the pickle's meta tensors, then with the data); ``check_network_fields`` the network
fields of a file that records them elsewhere (an ONNX export's metadata). The first problem is
a one-line UserError that names the field.

Bounds, each checked before the work it limits: the network, by arithmetic on ``model_kwargs``
before any module object exists (``sr.models.counting``): at most MAX_LAYERS weighted layers,
MAX_CHANNELS channels and MAX_PARAMETERS parameters (MAX_DISCRIMINATOR_PARAMETERS for a GAN's
discriminator); then built on the ``meta`` device (shapes, no storage) to compare the tensors
with; the weights finite and none over MAX_WEIGHT in magnitude (the shipped ones stay under 3).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from sr.errors import UserError, first_line, short_repr
from sr.models import COLORS, LAYOUTS, MODELS, Discriminator, model_kwargs
from sr.models.counting import network_size
from sr.torch_archive import too_nested

FORMAT = "sr-checkpoint-v1"

# Far above every network here (the largest, SRResNet x8, has 1.7 M parameters): a checkpoint
# asking for more is a mistake or an attack, not a model. The SRGAN discriminator has its own
# limit: its dense head grows with the square of the patch (23.6 M at 96 px, 89 M at the
# x8 default of 200 px; 500 M is a 470 px patch).
MAX_PARAMETERS = 50_000_000
MAX_DISCRIMINATOR_PARAMETERS = 500_000_000
# A real network here has at most 39 weighted layers (SRResNet x8) and 1024 channels (the
# discriminator's dense head); the limits leave room for bigger variants, not for a million
# layer objects built before the parameter count could refuse them.
MAX_LAYERS = 256
MAX_SCALE = 16
MAX_CHANNELS = 4096
# The shipped weights stay under 3 in magnitude; 1000 is far from any trained network and far
# below the 3e38 that makes a finite but garbage image.
MAX_WEIGHT = 1000.0
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Everything a checkpoint of this project may hold at its top level (sr.training writes the
# run's fields, sr.training.optim the EMA's, train_srgan.py the discriminator's).
KNOWN_KEYS = frozenset({
    "format", "arch", "model_kwargs", "scale", "color", "layout", "model", "name",
    "optimizer", "scheduler", "scaler", "epoch", "step", "partial", "best_psnr", "args", "scores",
    "precision", "channels_last", "precision_chosen_by", "trained_model", "ema_updates",
    "discriminator", "discriminator_kwargs", "d_optimizer", "d_scheduler", "d_scaler", "generator_source",
})
Refuse = Callable[[str, str], NoReturn]  # (field, problem) -> UserError
REQUIRED = ("arch", "model_kwargs", "scale", "color", "layout", "model")


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
            bad(f"{field}.{key}", f"is {short_repr(value)}; {cls.__name__} needs {need}")
    missing = [key for key in required if key not in kwargs]
    if missing:
        bad(field, f"lacks {', '.join(map(repr, missing))} (it must give {', '.join(required)})")


def _build_on_meta(cls: type[nn.Module], kwargs: dict[str, Any], field: str, bad: Refuse, limit: int, limit_name: str) -> nn.Module:
    """The network ``kwargs`` describe, with shapes but no storage: nothing is allocated, and
    nothing is built until its size, worked out from ``kwargs``, is within the limits."""
    layers, widest, count = network_size(cls, kwargs)
    if count > limit:
        bad(field, f"{short_repr(kwargs, 200)} give {cls.__name__} {count:,} parameters, over the limit of "
                   f"{limit:,} ({limit_name} in sr/checkpoint_fields.py)")
    if layers > MAX_LAYERS:
        bad(field, f"{short_repr(kwargs, 200)} give {cls.__name__} {layers:,} layers, over the limit of {MAX_LAYERS} "
                   "(MAX_LAYERS in sr/checkpoint_fields.py)")
    if widest > MAX_CHANNELS:
        bad(field, f"{short_repr(kwargs, 200)} give {cls.__name__} a layer of {widest:,} channels, over the limit of "
                   f"{MAX_CHANNELS} (MAX_CHANNELS in sr/checkpoint_fields.py)")
    try:
        with torch.device("meta"):
            net = cls(**kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        bad(field, f"{short_repr(kwargs, 200)} do not build {cls.__name__} ({first_line(exc)})")
    return net


def _largest_magnitude(tensor: torch.Tensor) -> float:
    """The largest |value| in ``tensor``, NaN if it holds one. In numpy: no torch thread pool
    (whose OpenMP threads cost more than the work on a busy machine)."""
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        tensor = tensor.float()
    values = tensor.detach().numpy()
    return float(np.abs(values).max()) if values.size else 0.0


def _check_tensors(tensors: Any, net: nn.Module, what: str, field: str, bad: Refuse, values: bool,
                   max_weight: float = math.inf) -> None:
    """``tensors`` must be exactly ``net``'s state_dict: same names, shapes, and float weights
    (with ``values``: finite, and at most ``max_weight`` in magnitude)."""
    if not isinstance(tensors, dict):
        bad(field, f"is {_kind(tensors)}, not a state_dict")
    expected = net.state_dict()
    for name in expected:
        if name not in tensors:
            bad(field, f"lacks tensor {name!r}, which {what} has")
    for name, tensor in tensors.items():
        if name not in expected:
            bad(field, f"has tensor {short_repr(name)}, which {what} does not have")
        want = expected[name]
        if not isinstance(tensor, torch.Tensor):
            bad(field, f"entry {name!r} is {_kind(tensor)}, not a tensor")
        if tuple(tensor.shape) != tuple(want.shape):
            bad(field, f"tensor {name!r} has shape {tuple(tensor.shape)}; {what} needs {tuple(want.shape)}")
        if want.is_floating_point():
            if tensor.dtype not in WEIGHT_DTYPES or tensor.layout != torch.strided:
                bad(field, f"tensor {name!r} is {tensor.dtype}; weights must be float32, float16 or bfloat16")
            if values:
                largest = _largest_magnitude(tensor)
                if not math.isfinite(largest):
                    bad(field, f"tensor {name!r} holds NaN or infinite values")
                if largest > max_weight:
                    bad(field, f"tensor {name!r} holds a weight of magnitude {largest:.3g}, over the limit of "
                               f"{max_weight:g} (MAX_WEIGHT in sr/checkpoint_fields.py)")
        elif tensor.dtype != want.dtype:
            bad(field, f"tensor {name!r} is {tensor.dtype}; {what} needs {want.dtype}")


def _check_network(fields: dict[str, Any], bad: Refuse) -> tuple[str, dict[str, Any], nn.Module]:
    """``arch``, ``model_kwargs``, ``scale``, ``color`` and ``layout``, each on its own, then
    against each other and the model table -> (arch, kwargs, the network on the meta device)."""
    arch = fields["arch"]
    if not isinstance(arch, str) or arch not in MODELS:
        bad("arch", f"is {short_repr(arch)}, not a known architecture ({', '.join(MODELS)})")
    spec = MODELS[arch]
    layout, color, scale = fields["layout"], fields["color"], fields["scale"]
    if not isinstance(layout, str) or layout not in LAYOUTS:
        bad("layout", f"is {short_repr(layout)}; it must be one of {', '.join(map(repr, LAYOUTS))} ({arch} is {spec.layout!r})")
    if layout != spec.layout:
        bad("layout", f"is {layout!r}, but {arch} is an {spec.layout!r} model")
    if not isinstance(color, str) or color not in COLORS:
        bad("color", f"is {short_repr(color)}; it must be one of {', '.join(map(repr, COLORS))}")
    if not _is_int(scale) or scale < 2:
        bad("scale", f"is {short_repr(scale)}; it must be an integer >= 2")
    if scale > MAX_SCALE:  # before the table's network for it is built: SRResNet makes a stage per factor 2
        bad("scale", f"is {short_repr(scale)}; no model here enlarges more than {MAX_SCALE} times")
    # The arch's own rules about the scale, from its constructor (SRResNet: 2, 4 or 8).
    table_kwargs = model_kwargs(arch, scale, color)
    try:
        with torch.device("meta"):
            spec.cls(**table_kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        bad("scale", f"is {short_repr(scale)}, which {arch} cannot do ({first_line(exc)})")

    kwargs = fields["model_kwargs"]
    _check_kwargs(kwargs, spec.cls, list(table_kwargs), "model_kwargs", bad)
    if kwargs["channels"] != COLORS[color]:
        bad("model_kwargs.channels", f"is {kwargs['channels']}, but colour {color!r} has {COLORS[color]}")
    if layout == "lr-hr" and kwargs["scale"] != scale:
        bad("model_kwargs.scale", f"is {kwargs['scale']}, but the checkpoint's scale is {scale}")
    if layout == "upsampled" and kwargs.get("scale", 1) != 1:
        bad("model_kwargs.scale", f"is {kwargs['scale']}; {arch} runs on the upsampled image, at scale 1")
    net = _build_on_meta(spec.cls, kwargs, "model_kwargs", bad, MAX_PARAMETERS, "MAX_PARAMETERS")
    return arch, kwargs, net


def check_network_fields(fields: dict[str, Any], where: str) -> None:
    """The checks of a checkpoint's network fields (arch, model_kwargs, scale, color, layout),
    for a file that records them elsewhere (an ONNX export's metadata): UserError
    "<where> field '<name>' <problem>", in one line."""

    def bad(field: str, problem: str) -> NoReturn:
        raise UserError(f"{where} field {field!r} {problem}")

    nesting = too_nested(fields)
    if nesting:
        raise UserError(f"{where} {nesting}")
    _check_network(fields, bad)


def validate_checkpoint(state: Any, path: str | Path = "checkpoint", values: bool = True) -> None:
    """Check every field of a loaded checkpoint, and its tensors against the network the
    fields describe, before any network is built; the first problem is a one-line UserError
    that names the field.

    The networks' sizes are worked out from their keyword arguments first and then built on
    the ``meta`` device (shapes, no storage), so a checkpoint that describes billions of
    parameters or a million layers is refused without making them. ``values`` False skips
    the checks of what the tensors hold (for ``load_checkpoint``'s first pass, on meta tensors).
    """

    def bad(field: str, problem: str) -> NoReturn:
        raise UserError(f"{path}: checkpoint field {field!r} {problem}")

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a checkpoint of this project (no {FORMAT!r} format tag)")
    # Before anything is shown: repr of a list 100,000 deep is a RecursionError.
    nesting = too_nested(state)
    if nesting:
        raise UserError(f"{path}: checkpoint {nesting}")
    unknown = sorted(str(key)[:40] for key in state if key not in KNOWN_KEYS)
    if unknown:
        raise UserError(f"{path}: checkpoint has unknown top-level key(s) {', '.join(map(repr, unknown[:5]))} "
                        f"(KNOWN_KEYS in sr/checkpoint_fields.py); not read")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")

    # The fields, each on its own, then against each other and the model table.
    arch, kwargs, net = _check_network(state, bad)
    for key, accept, need in (("epoch", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                              ("step", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                              ("best_psnr", lambda v: (_is_int(v) or isinstance(v, float)) and not math.isnan(v), "a number"),
                              ("name", lambda v: isinstance(v, str), "a string"),
                              *((k, lambda v: isinstance(v, dict), "a dict") for k in
                                ("args", "optimizer", "scheduler", "scaler", "d_optimizer", "d_scheduler", "d_scaler"))):
        if key in state and not accept(state[key]):
            bad(key, f"is {short_repr(state[key])}; it must be {need}")
    # A resume rebuilds the network from the run's settings (args) and loads ``model`` into it.
    for key in ("arch", "scale", "color"):
        if key in state.get("args", {}) and state["args"][key] != state[key]:
            bad(f"args.{key}", f"is {short_repr(state['args'][key])}, but the checkpoint's {key} is {short_repr(state[key])}")

    _check_tensors(state["model"], net, f"{arch} {short_repr(kwargs, 200)}", "model", bad, values, MAX_WEIGHT)
    # --ema: ``model`` is the average; the trained weights a resume goes on from are of the same network.
    if "trained_model" in state:
        _check_tensors(state["trained_model"], net, f"{arch} {short_repr(kwargs, 200)}", "trained_model", bad, values, MAX_WEIGHT)
    if "ema_updates" in state and not (_is_int(state["ema_updates"]) and state["ema_updates"] >= 0):
        bad("ema_updates", f"is {short_repr(state['ema_updates'])}; it must be an integer >= 0")

    # A GAN run's discriminator, the same way.
    if "discriminator" in state or "discriminator_kwargs" in state:
        for key in ("discriminator", "discriminator_kwargs"):
            if key not in state:
                raise UserError(f"{path}: checkpoint lacks {key} (it has the other half of a GAN run)")
        d_kwargs = state["discriminator_kwargs"]
        _check_kwargs(d_kwargs, Discriminator, ["channels", "patch_size"], "discriminator_kwargs", bad)
        color = state["color"]
        if d_kwargs["channels"] != COLORS[color]:
            bad("discriminator_kwargs.channels", f"is {d_kwargs['channels']}, but colour {color!r} has {COLORS[color]}")
        if d_kwargs["patch_size"] < 1:
            bad("discriminator_kwargs.patch_size", f"is {d_kwargs['patch_size']}; it must be >= 1")
        d_net = _build_on_meta(Discriminator, d_kwargs, "discriminator_kwargs", bad,
                               MAX_DISCRIMINATOR_PARAMETERS, "MAX_DISCRIMINATOR_PARAMETERS")
        _check_tensors(state["discriminator"], d_net, f"Discriminator {short_repr(d_kwargs, 200)}", "discriminator", bad, values)
