"""Checkpoints: one self-describing dict, written atomically, read with ``weights_only=True``.

Keys: ``format`` (always FORMAT), ``arch`` and ``model_kwargs`` (enough to rebuild the
network), ``scale``, ``color``, ``layout``, ``model`` (the bare state_dict, taken before
any DDP or torch.compile wrapper), and for a run that can continue: ``optimizer``,
``scheduler``, ``epoch`` (epochs finished), ``step`` (batches done in the epoch after
that, 0 at an epoch's end), ``best_psnr``, ``args``. GAN runs add ``discriminator``,
``discriminator_kwargs``, ``d_optimizer`` and ``d_scheduler``.

``load_checkpoint`` checks all of it (``validate_checkpoint``) before any network is
built: a file that would fail later, or would ask for gigabytes, is refused in one line.

Bounds, each checked before the work it limits, so that any refusal comes in bounded time and
memory (a few hundred MB at most, on the order of a second after Python starts):
- the archive, with ``zipfile`` before torch reads it: at most MAX_ENTRIES entries, only the
  names torch.save writes, data.pkl at most MAX_PICKLE_BYTES and every other record at most
  MAX_RECORD_BYTES uncompressed (a deflated entry is judged by what it inflates to);
- the pickle, read with tensors on the ``meta`` device (no storage is read): only KNOWN_KEYS
  at the top, nesting at most MAX_NESTING deep (walked without recursion, before any repr);
- the network, by arithmetic on ``model_kwargs`` before any module object exists: at most
  MAX_LAYERS weighted layers, MAX_CHANNELS channels and MAX_PARAMETERS parameters
  (MAX_DISCRIMINATOR_PARAMETERS for a GAN's discriminator);
- the tensor data: every storage the archive holds no larger than the largest the pickle
  declares, all of them together no more than the pickle declares, and that no more than
  STORAGE_FACTOR copies of the declared networks in float32 plus STORAGE_SLACK_BYTES;
- the weights: finite, and none over MAX_WEIGHT in magnitude (the shipped ones stay under 3).

Shipped weights are .safetensors (``save_weights``): the fields above as JSON strings in the
file's metadata, the state_dict as its tensors, no pickle. ``load_checkpoint`` reads them with the
same checks: the header's sizes first (``sr.tensor_file.read_header``), then the fields and the
tensors' shapes against the network they describe, before any tensor data is read. Training
checkpoints stay .pth: they hold optimiser state, which is not a flat dict of tensors.
"""

from __future__ import annotations

import inspect
import json
import math
import pickle
import re
import zipfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from sr.atomic import atomic_path
from sr.errors import UserError, first_line
from sr.interrupts import deferred_interrupt
from sr.models import COLORS, LAYOUTS, MODELS, Discriminator, model_kwargs, rebuild
from sr.models.fsrcnn import FSRCNN
from sr.models.srcnn import SRCNN
from sr.models.srresnet import SRResNet
from sr.tensor_file import load_tensors, meta_tensors, read_header, save_tensors

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
# The archive. Our data.pkl is 1-13 KB (a training run's, with optimizer and args, the largest).
MAX_ENTRIES = 10_000
MAX_PICKLE_BYTES = 4 << 20
MAX_RECORD_BYTES = 4096  # version, byteorder, .format_version, ...: a few bytes each
MAX_NESTING = 16  # a training checkpoint nests 4 deep (optimizer.state.0.exp_avg)
MAX_VALUES = 1_000_000  # a training run's checkpoint holds a few thousand
# A run's checkpoint holds the model, the EMA's trained model and Adam's two moments, and the
# same for a discriminator: 4 float32 copies; 6 leaves room, 1 MB covers the scalars.
STORAGE_FACTOR = 6
STORAGE_SLACK_BYTES = 1 << 20
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
# The records torch.save writes besides data.pkl and data/<n>.
_SMALL_RECORDS = {"version", ".format_version", ".storage_alignment", "byteorder", ".data/serialization_id", ".data/version"}
Refuse = Callable[[str, str], NoReturn]  # (field, problem) -> UserError
REQUIRED = ("arch", "model_kwargs", "scale", "color", "layout", "model")
# What a weights-only file (shipped .safetensors) carries besides its tensors, each a JSON string.
WEIGHTS_FACTS = ("format", "arch", "model_kwargs", "scale", "color", "layout", "name")
MAX_FACT_CHARS = 4096  # model_kwargs, the longest, is under 200 characters
# A weights-only file holds one network: its parameters in float32 at most, and its header.
MAX_WEIGHTS_FILE_BYTES = 4 * MAX_PARAMETERS + (16 << 20)


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
    that does not describe a network of the model table (see ``validate_checkpoint``). The
    bounds of the module docstring are checked in order: the archive's listing, then the
    pickle with tensors on the meta device, then the storages' sizes; only then are the
    tensors read, and their values checked.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path)
    storage_sizes = _inspect_archive(path)
    skeleton = _torch_load(path, "meta")  # the pickle alone: every tensor on the meta device, no data read
    validate_checkpoint(skeleton, path, values=False)
    _check_storage_sizes(skeleton, storage_sizes, path)
    state = _torch_load(path, "cpu")
    validate_checkpoint(state, path)
    return state


def save_weights(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint's network (``WEIGHTS_FACTS`` and ``model``, no training state) as a
    .safetensors file: the facts as JSON strings in its metadata, read back by ``load_checkpoint``."""
    state = {"format": FORMAT, **state}
    metadata = {key: json.dumps(state[key], sort_keys=True) for key in WEIGHTS_FACTS if key in state}
    with deferred_interrupt():
        save_tensors(path, state["model"], metadata)


def _load_safetensors(path: Path) -> dict[str, Any]:
    header = read_header(path, MAX_WEIGHTS_FILE_BYTES, MAX_ENTRIES)
    if "format" not in header.metadata:
        raise UserError(f"{path}: not a checkpoint of this project (no {FORMAT!r} format tag in its metadata)")
    fields = {}
    for key, text in header.metadata.items():
        if key not in WEIGHTS_FACTS:
            raise UserError(f"{path}: checkpoint metadata has unknown key {key[:40]!r} (WEIGHTS_FACTS in sr/checkpoint.py); not read")
        if len(text) > MAX_FACT_CHARS:
            raise UserError(f"{path}: checkpoint metadata {key!r} is {len(text):,} characters, over {MAX_FACT_CHARS:,}")
        try:
            fields[key] = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"{path}: checkpoint metadata {key!r} is not JSON ({_show(text)})") from None
    # The shapes and dtypes from the header, against the network the fields describe; then the data.
    validate_checkpoint({**fields, "model": meta_tensors(header)}, path, values=False)
    state = {**fields, "model": load_tensors(path, header)}
    validate_checkpoint(state, path)
    return state


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` says it is one of this project's checkpoints (its format tag), read from the
    safetensors header or the archive's pickle alone; False for any other weights file, such as a
    community model's state_dict. UserError for a file that is neither safetensors nor a torch archive."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        # Only the header is read (at most MAX_HEADER_BYTES); the loader that follows applies its own limits.
        return "format" in read_header(path, max_file_bytes=1 << 62, max_tensors=1 << 62).metadata
    _inspect_archive(path, "a weights file this enlarger reads")
    skeleton = _torch_load(path, "meta")
    return isinstance(skeleton, dict) and skeleton.get("format") == FORMAT


def load_state_file(path: str | Path, max_bytes: int, max_tensors: int) -> Any:
    """What a torch.save archive that is not ours holds (a community model's state_dict), on the CPU,
    under the archive's bounds: its listing, then the pickle on the meta device (nesting, at most
    ``max_tensors`` tensors of at most ``max_bytes`` together), then the records against that."""
    path = Path(path)
    stored = _inspect_archive(path, "a weights file this enlarger reads")
    skeleton = _torch_load(path, "meta")
    nesting = _too_nested(skeleton)
    if nesting:
        raise UserError(f"{path}: {nesting}")
    declared = _storages_declared(skeleton)
    if len(declared) > max_tensors:
        raise UserError(f"{path}: holds {len(declared):,} tensors, over the limit of {max_tensors:,}")
    if sum(declared) > max_bytes:
        raise UserError(f"{path}: its tensors take {sum(declared):,} bytes, over the limit of {max_bytes:,}")
    _check_records(declared, stored, path)
    return _torch_load(path, "cpu")


def _torch_load(path: Path, device: str) -> Any:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any class it does not know before making one: the file is whole, not corrupt.
        if "weights only load failed" in str(exc).lower():
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            raise UserError(f"{path}: holds a Python object other than tensors and plain values "
                            f"({found.group(1) if found else 'not one weights_only loading knows'}); not loaded, "
                            "none of its code ran") from None
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line(exc, 120)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line(exc, 120)})") from None


def _inspect_archive(path: Path, what: str = "a checkpoint of this project") -> list[int]:
    """The uncompressed sizes of the archive's tensor storages (data/<n>), read from the zip's
    listing alone; UserError for anything torch.save does not write or that is over its bound."""
    def refuse(problem: str) -> NoReturn:
        raise UserError(f"{path}: not {what} ({problem})")

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x80\x02":  # a pickle: torch.save before PyTorch 1.6, or torch.save(..., _use_new_zipfile_serialization=False)
        refuse("PyTorch's old pickle format, whose tensor sizes cannot be checked before they are read; "
               "re-save it with a current torch.save, or as .safetensors")

    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()[: MAX_ENTRIES + 1]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line(exc, 120)})") from None
    if len(entries) > MAX_ENTRIES:
        refuse(f"its archive has over {MAX_ENTRIES:,} entries (MAX_ENTRIES in sr/checkpoint.py)")
    if not entries:
        refuse("its archive is empty")
    folder = entries[0].filename.split("/", 1)[0]
    storages, pickles = [], 0
    for entry in entries:
        top, _, name = entry.filename.partition("/")
        if top != folder or not name:
            refuse(f"its archive holds {_show(entry.filename)} outside the {folder!r} folder")
        if name == "data.pkl":
            pickles += 1
            limit = MAX_PICKLE_BYTES
        elif name.startswith("data/") and name[5:].isdigit():
            storages.append(entry.file_size)
            continue
        elif name in _SMALL_RECORDS:
            limit = MAX_RECORD_BYTES
        else:
            refuse(f"its archive holds {_show(entry.filename)}, which torch.save does not write")
        if entry.file_size > limit:
            refuse(f"{entry.filename} is {entry.file_size:,} bytes uncompressed, over the limit of {limit:,}")
    if pickles != 1:
        refuse("its archive has no data.pkl")
    return storages


def _storages_declared(state: Any) -> list[int]:
    """The byte size of each tensor's storage, as the pickle declares it (meta tensors)."""
    sizes, todo = [], [state]
    while todo:
        value = todo.pop()
        if isinstance(value, torch.Tensor):
            sizes.append(value.untyped_storage().nbytes())
        elif isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend(value)
    return sizes


def _check_storage_sizes(skeleton: dict[str, Any], stored: list[int], path: Path) -> None:
    """The archive's storages against what the pickle declares, and that against the networks'
    size: no storage is read that the declared networks do not need."""
    declared = _storages_declared(skeleton)
    parameters = network_size(MODELS[skeleton["arch"]].cls, skeleton["model_kwargs"])[2]
    if "discriminator_kwargs" in skeleton:
        parameters += network_size(Discriminator, skeleton["discriminator_kwargs"])[2]
    budget = STORAGE_FACTOR * 4 * parameters + STORAGE_SLACK_BYTES
    if sum(declared) > budget:
        raise UserError(f"{path}: checkpoint tensors take {sum(declared):,} bytes, over the {budget:,} that its "
                        f"networks' {parameters:,} parameters allow (STORAGE_FACTOR in sr/checkpoint.py)")
    _check_records(declared, stored, path)


def _check_records(declared: list[int], stored: list[int], path: Path) -> None:
    """No record in the archive larger than the largest tensor the pickle declares, and no more in all."""
    largest = max(declared, default=0)
    for size in stored:
        if size > largest:
            raise UserError(f"{path}: the archive holds a tensor record of {size:,} bytes uncompressed, larger than "
                            f"any tensor it declares ({largest:,} bytes); not read")
    if sum(stored) > sum(declared):
        raise UserError(f"{path}: the archive's tensor records take {sum(stored):,} bytes uncompressed, more than the "
                        f"{sum(declared):,} its tensors declare; not read")


def _too_nested(value: Any) -> str | None:
    """What is wrong with how ``value``'s containers nest, or None. Walked without recursion
    and at most MAX_VALUES values, so a list 100,000 deep, one that holds itself, or one
    shared a thousand times over ends the walk early."""
    todo, seen = [(value, 0)], 0
    while todo:
        value, depth = todo.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"holds over {MAX_VALUES:,} values (MAX_VALUES in sr/checkpoint.py)"
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            if depth >= MAX_NESTING:
                return f"nests containers over {MAX_NESTING} deep (MAX_NESTING in sr/checkpoint.py)"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            todo.extend((item, depth + 1) for item in items)
    return None


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int over 4300 digits; nesting is bounded before anything is shown
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _conv(c_in: int, c_out: int, kernel: int, bias: bool = True) -> int:
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def _fsrcnn_size(channels: int, d: int, s: int, m: int, mapping_kernel: int, mapping_norm: bool, scale: int) -> tuple[int, int, int]:
    # conv 5x5 + PReLU(d), shrink 1x1 + PReLU(s), m x (conv k x k [+ InstanceNorm] + PReLU(s)),
    # expand 1x1 + PReLU(d), 9x9 deconvolution (weight d x channels x 9 x 9)
    mapping = _conv(s, s, mapping_kernel) + s + (2 * s if mapping_norm else 0)
    count = (_conv(channels, d, 5) + d + _conv(d, s, 1) + s + m * mapping + _conv(s, d, 1) + d + _conv(d, channels, 9))
    return m + 4, max(channels, d, s), count


def _srcnn_size(channels: int, n1: int, n2: int, f1: int, f2: int, f3: int) -> tuple[int, int, int]:
    return 3, max(channels, n1, n2), _conv(channels, n1, f1) + _conv(n1, n2, f2) + _conv(n2, channels, f3)


def _srresnet_size(channels: int, features: int, blocks: int, scale: int, norm: str, negative_slope: float) -> tuple[int, int, int]:
    stages = max(scale, 1).bit_length() - 1  # the constructor refuses scales that are not powers of two
    block = 2 * _conv(features, features, 3, bias=False) + (4 * features if norm == "all" else 0)
    count = (_conv(channels, features, 9) + blocks * block + _conv(features, features, 3)
             + (2 * features if norm in ("all", "tail") else 0)
             + stages * _conv(features, 4 * features, 3, bias=False) + _conv(features, channels, 9))
    return 2 * blocks + stages + 3, max(channels, 4 * features), count


def _discriminator_size(channels: int, patch_size: int, features: int, batch_norm: bool) -> tuple[int, int, int]:
    widths = [features, features, 2 * features, 2 * features, 4 * features, 4 * features, 8 * features, 8 * features]
    count, c_in, side = 0, channels, patch_size
    for i, c_out in enumerate(widths):
        stride = 2 if i % 2 == 1 else 1
        normed = batch_norm and i > 0
        count += _conv(c_in, c_out, 3, bias=not normed) + (2 * c_out if normed else 0)
        c_in, side = c_out, (side + 2 - 3) // stride + 1
    count += c_in * side * side * 1024 + 1024 + 1024 + 1
    return 10, max(channels, 8 * features, 1024), count


_SIZES = {FSRCNN: _fsrcnn_size, SRCNN: _srcnn_size, SRResNet: _srresnet_size, Discriminator: _discriminator_size}


def network_size(cls: type[nn.Module], kwargs: dict[str, Any]) -> tuple[int, int, int]:
    """(weighted layers, widest layer's channels, parameters) of ``cls(**kwargs)``, by arithmetic
    on the arguments alone: no module object is made. ``kwargs`` have passed ``_check_kwargs``."""
    params = inspect.signature(cls).parameters
    return _SIZES[cls](**{name: kwargs.get(name, p.default) for name, p in params.items()})


def _build_on_meta(cls: type[nn.Module], kwargs: dict[str, Any], field: str, bad: Refuse, limit: int, limit_name: str) -> nn.Module:
    """The network ``kwargs`` describe, with shapes but no storage: nothing is allocated, and
    nothing is built until its size, worked out from ``kwargs``, is within the limits."""
    layers, widest, count = network_size(cls, kwargs)
    if count > limit:
        bad(field, f"{_show(kwargs, 200)} give {cls.__name__} {count:,} parameters, over the limit of "
                   f"{limit:,} ({limit_name} in sr/checkpoint.py)")
    if layers > MAX_LAYERS:
        bad(field, f"{_show(kwargs, 200)} give {cls.__name__} {layers:,} layers, over the limit of {MAX_LAYERS} "
                   "(MAX_LAYERS in sr/checkpoint.py)")
    if widest > MAX_CHANNELS:
        bad(field, f"{_show(kwargs, 200)} give {cls.__name__} a layer of {widest:,} channels, over the limit of "
                   f"{MAX_CHANNELS} (MAX_CHANNELS in sr/checkpoint.py)")
    try:
        with torch.device("meta"):
            net = cls(**kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        bad(field, f"{_show(kwargs, 200)} do not build {cls.__name__} ({first_line(exc)})")
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
            bad(field, f"has tensor {_show(name)}, which {what} does not have")
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
                               f"{max_weight:g} (MAX_WEIGHT in sr/checkpoint.py)")
        elif tensor.dtype != want.dtype:
            bad(field, f"tensor {name!r} is {tensor.dtype}; {what} needs {want.dtype}")


def _check_network(fields: dict[str, Any], bad: Refuse) -> tuple[str, dict[str, Any], nn.Module]:
    """``arch``, ``model_kwargs``, ``scale``, ``color`` and ``layout``, each on its own, then
    against each other and the model table -> (arch, kwargs, the network on the meta device)."""
    arch = fields["arch"]
    if not isinstance(arch, str) or arch not in MODELS:
        bad("arch", f"is {_show(arch)}, not a known architecture ({', '.join(MODELS)})")
    spec = MODELS[arch]
    layout, color, scale = fields["layout"], fields["color"], fields["scale"]
    if not isinstance(layout, str) or layout not in LAYOUTS:
        bad("layout", f"is {_show(layout)}; it must be one of {', '.join(map(repr, LAYOUTS))} ({arch} is {spec.layout!r})")
    if layout != spec.layout:
        bad("layout", f"is {layout!r}, but {arch} is an {spec.layout!r} model")
    if not isinstance(color, str) or color not in COLORS:
        bad("color", f"is {_show(color)}; it must be one of {', '.join(map(repr, COLORS))}")
    if not _is_int(scale) or scale < 2:
        bad("scale", f"is {_show(scale)}; it must be an integer >= 2")
    if scale > MAX_SCALE:  # before the table's network for it is built: SRResNet makes a stage per factor 2
        bad("scale", f"is {_show(scale)}; no model here enlarges more than {MAX_SCALE} times")
    # The arch's own rules about the scale, from its constructor (SRResNet: 2, 4 or 8).
    table_kwargs = model_kwargs(arch, scale, color)
    try:
        with torch.device("meta"):
            spec.cls(**table_kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        bad("scale", f"is {_show(scale)}, which {arch} cannot do ({first_line(exc)})")

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

    nesting = _too_nested(fields)
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
    nesting = _too_nested(state)
    if nesting:
        raise UserError(f"{path}: checkpoint {nesting}")
    unknown = sorted(str(key)[:40] for key in state if key not in KNOWN_KEYS)
    if unknown:
        raise UserError(f"{path}: checkpoint has unknown top-level key(s) {', '.join(map(repr, unknown[:5]))} "
                        f"(KNOWN_KEYS in sr/checkpoint.py); not read")
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
            bad(key, f"is {_show(state[key])}; it must be {need}")
    # A resume rebuilds the network from the run's settings (args) and loads ``model`` into it.
    for key in ("arch", "scale", "color"):
        if key in state.get("args", {}) and state["args"][key] != state[key]:
            bad(f"args.{key}", f"is {_show(state['args'][key])}, but the checkpoint's {key} is {_show(state[key])}")

    _check_tensors(state["model"], net, f"{arch} {_show(kwargs, 200)}", "model", bad, values, MAX_WEIGHT)
    # --ema: ``model`` is the average; the trained weights a resume goes on from are of the same network.
    if "trained_model" in state:
        _check_tensors(state["trained_model"], net, f"{arch} {_show(kwargs, 200)}", "trained_model", bad, values, MAX_WEIGHT)
    if "ema_updates" in state and not (_is_int(state["ema_updates"]) and state["ema_updates"] >= 0):
        bad("ema_updates", f"is {_show(state['ema_updates'])}; it must be an integer >= 0")

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
        _check_tensors(state["discriminator"], d_net, f"Discriminator {_show(d_kwargs, 200)}", "discriminator", bad, values)


def model_from_checkpoint(state: dict[str, Any], path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (eval mode).

    ``state`` comes from ``load_checkpoint``, which has checked that the weights fit.
    """
    try:
        model = rebuild(state["arch"], state["model_kwargs"])
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: weights do not fit {state['arch']} {state['model_kwargs']} ({first_line(exc)})") from None
    return model.eval()
