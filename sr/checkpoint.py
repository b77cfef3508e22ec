"""Checkpoints: one self-describing dict, written atomically, read with ``weights_only=True``.

Keys: ``format`` (always FORMAT), ``arch`` and ``model_kwargs`` (enough to rebuild the
network), ``scale``, ``color``, ``layout``, ``model`` (the bare state_dict, taken before
any DDP or torch.compile wrapper), and for a run that can continue: ``optimizer``,
``scheduler``, ``epoch`` (epochs finished), ``step`` (batches done in the epoch after
that, 0 at an epoch's end), ``best_psnr``, ``args``. GAN runs add ``discriminator``,
``discriminator_kwargs``, ``d_optimizer`` and ``d_scheduler``.

``load_checkpoint`` checks all of it before any network is built: a file that would fail later,
or would ask for gigabytes, is refused in one line, in bounded time and memory (a few hundred
MB at most, on the order of a second after Python starts). For a .pth, in this order: the
archive's listing and its pickle, read once with tensors on the meta device (``sr.torch_archive``);
the fields and the tensors' shapes (``sr.checkpoint_fields``); the storages against what the
declared networks need (at most STORAGE_FACTOR float32 copies of them plus STORAGE_SLACK_BYTES);
only then the tensor data, and what it holds.

Shipped weights are .safetensors (``save_weights``): the fields above as JSON strings in the
file's metadata, the state_dict as its tensors, no pickle. ``load_checkpoint`` reads them with the
same checks: the header's sizes first (``sr.tensor_file.read_header``), then the fields and the
tensors' shapes against the network they describe, before any tensor data is read. Training
checkpoints stay .pth: they hold optimiser state, which is not a flat dict of tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr.atomic import atomic_path
from sr.checkpoint_fields import FORMAT, MAX_PARAMETERS, validate_checkpoint
from sr.errors import UserError, first_line, short_repr
from sr.interrupts import deferred_interrupt
from sr.models import MODELS, Discriminator, rebuild
from sr.models.counting import network_size
from sr.tensor_file import load_tensors, meta_tensors, read_header, save_tensors
from sr.torch_archive import check_records, open_archive, read_tensors, storages_declared

# A run's checkpoint holds the model, the EMA's trained model and Adam's two moments, and the
# same for a discriminator: 4 float32 copies; 6 leaves room, 1 MB covers the scalars.
STORAGE_FACTOR = 6
STORAGE_SLACK_BYTES = 1 << 20
# What a weights-only file (shipped .safetensors) carries besides its tensors, each a JSON string.
WEIGHTS_FACTS = ("format", "arch", "model_kwargs", "scale", "color", "layout", "name")
MAX_FACT_CHARS = 4096  # model_kwargs, the longest, is under 200 characters
# A weights-only file holds one network: its parameters in float32 at most, and its header.
MAX_WEIGHTS_FILE_BYTES = 4 * MAX_PARAMETERS + (16 << 20)
# The most entries a checkpoint's safetensors header may list (a network here has at most a few hundred).
MAX_WEIGHTS_TENSORS = 10_000


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
    that does not describe a network of the model table (``sr.checkpoint_fields``). For a .pth
    the pickle is read once (``sr.torch_archive``): its fields and shapes are checked on meta
    tensors, then the storages' sizes; only then are the tensors read, and their values checked.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path)
    archive = open_archive(path)
    validate_checkpoint(archive.skeleton, path, values=False)
    _check_storage_budget(archive.skeleton, path)
    check_records(archive)
    state = read_tensors(archive)
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
    header = read_header(path, MAX_WEIGHTS_FILE_BYTES, MAX_WEIGHTS_TENSORS)
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
            raise UserError(f"{path}: checkpoint metadata {key!r} is not JSON ({short_repr(text)})") from None
    # The shapes and dtypes from the header, against the network the fields describe; then the data.
    validate_checkpoint({**fields, "model": meta_tensors(header)}, path, values=False)
    state = {**fields, "model": load_tensors(path, header)}
    validate_checkpoint(state, path)
    return state


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` says it is one of this project's checkpoints (its format tag), read from the
    safetensors header or the archive's pickle alone; False for any other weights file, such as a
    community model's state_dict. UserError for a file that is neither safetensors nor a torch archive.
    (The pickle read here is the one ``load_checkpoint`` then checks: a file is unpickled once.)"""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        # Only the header is read (at most MAX_HEADER_BYTES); the loader that follows applies its own limits.
        return "format" in read_header(path, max_file_bytes=1 << 62, max_tensors=1 << 62).metadata
    skeleton = open_archive(path, "a weights file this enlarger reads").skeleton
    return isinstance(skeleton, dict) and skeleton.get("format") == FORMAT


def _check_storage_budget(skeleton: dict[str, Any], path: Path) -> None:
    """What the pickle declares against the networks' size: no storage is read that the declared
    networks do not need. ``skeleton`` has passed ``validate_checkpoint``."""
    declared = storages_declared(skeleton)
    parameters = network_size(MODELS[skeleton["arch"]].cls, skeleton["model_kwargs"]).parameters
    if "discriminator_kwargs" in skeleton:
        parameters += network_size(Discriminator, skeleton["discriminator_kwargs"]).parameters
    budget = STORAGE_FACTOR * 4 * parameters + STORAGE_SLACK_BYTES
    if sum(declared) > budget:
        raise UserError(f"{path}: checkpoint tensors take {sum(declared):,} bytes, over the {budget:,} that its "
                        f"networks' {parameters:,} parameters allow (STORAGE_FACTOR in sr/checkpoint.py)")


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
