"""safetensors files: the header's promises checked before any tensor data is read; written atomically.

A .safetensors file is an 8-byte little-endian header length, a JSON header (per tensor: dtype,
shape and ``data_offsets`` into the data that follows; ``__metadata__``: str -> str) and the raw
tensor data. Nothing in it is executed, unlike a pickle. ``read_header`` checks, in this order and
from the file's size and header alone: the file size, the header's length, the tensor count, and
that every tensor's offsets lie in the file, match its dtype and shape, and that together they
cover the data exactly once; only then does ``load_tensors`` read (and map) the data.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch

from sr.atomic import atomic_path
from sr.errors import UserError, first_line

# safetensors' own reader stops at 100 MB of header; the header of a 3,000-tensor transformer
# (HAT-L) is about 300 KB.
MAX_HEADER_BYTES = 16 << 20
MAX_DIMS = 8
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


@dataclass(frozen=True)
class Entry:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data after the header
    end: int


@dataclass(frozen=True)
class Header:
    metadata: dict[str, str]
    tensors: dict[str, Entry]


def read_header(path: str | Path, max_file_bytes: int, max_tensors: int) -> Header:
    """The header of a .safetensors file, every declared size checked against the file; UserError
    in one line for a file over ``max_file_bytes``, with over ``max_tensors`` tensors, or whose
    header does not describe its data."""
    path = Path(path)

    def refuse(problem: str) -> NoReturn:
        raise UserError(f"{path}: not a readable safetensors file ({problem})")

    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            raise UserError(f"{path}: {size:,} bytes, over the limit of {max_file_bytes:,} for a weights file")
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                refuse("shorter than its 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                refuse(f"declares a header of {length:,} bytes in a file of {size:,}")
            text = f.read(length)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({first_line(exc)})") from None
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        refuse(f"its header is not JSON: {first_line(exc, 80)}")
    if not isinstance(header, dict):
        refuse("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        refuse("its __metadata__ is not a map of strings to strings")
    if len(header) > max_tensors:
        refuse(f"it holds {len(header):,} tensors, over the limit of {max_tensors:,}")
    data_bytes = size - 8 - length
    tensors = {}
    for name, info in header.items():
        shown = name[:60]
        if not isinstance(info, dict) or info.get("dtype") not in DTYPES:
            refuse(f"tensor {shown!r} has no dtype this reader knows")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= data_bytes for n in shape)):
            refuse(f"tensor {shown!r} has shape {str(shape)[:60]}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_bytes):
            refuse(f"tensor {shown!r} has data_offsets {str(offsets)[:60]} outside the file's {data_bytes:,} data bytes")
        dtype = DTYPES[info["dtype"]]
        if math.prod(shape) * dtype.itemsize != offsets[1] - offsets[0]:
            refuse(f"tensor {shown!r}: shape {shape} of {info['dtype']} does not take the {offsets[1] - offsets[0]:,} "
                   "bytes its offsets give")
        tensors[name] = Entry(dtype, tuple(shape), offsets[0], offsets[1])
    # The data is covered exactly once, in order: no byte is two tensors', none is left over.
    position = 0
    for entry in sorted(tensors.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            refuse("its tensors overlap or leave gaps in the data")
        position = entry.end
    if position != data_bytes:
        refuse(f"its tensors take {position:,} bytes of the {data_bytes:,} after the header")
    return Header(metadata, tensors)


def meta_tensors(header: Header) -> dict[str, torch.Tensor]:
    """The header's tensors on the ``meta`` device: their dtypes and shapes, no storage."""
    return {name: torch.empty(e.shape, dtype=e.dtype, device="meta") for name, e in header.tensors.items()}


def load_tensors(path: str | Path, header: Header) -> dict[str, torch.Tensor]:
    """The tensors of a file whose ``header`` has passed ``read_header`` (CPU, copied out of the map)."""
    from safetensors.torch import load_file  # a dependency of the project; imported where it is used

    try:
        tensors = load_file(path)
    except Exception as exc:  # safetensors raises its own SafetensorError, and OSError
        raise UserError(f"{path}: not a readable safetensors file ({first_line(exc, 120)})") from None
    if tensors.keys() != header.tensors.keys():
        raise UserError(f"{path}: changed while it was read")
    return {name: t.clone() for name, t in tensors.items()}  # not tied to the file's memory map


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``tensors`` and ``metadata`` as a .safetensors file, atomically (``sr.atomic``)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, tmp, metadata)
