"""A torch.save archive read under bounds: this project's checkpoints and community models' state_dicts.

    archive = open_archive(path)          # the zip's listing checked, then the pickle, tensors on meta
    ... the caller checks archive.skeleton (fields, shapes, sizes), then check_records(archive) ...
    state = read_tensors(archive)         # only now is tensor data read, each record once

Bounds, each checked before the work it limits, so that any refusal comes in bounded time and memory:
- the archive, with ``zipfile`` before torch reads it: at most MAX_ENTRIES entries, only the
  names torch.save writes, data.pkl at most MAX_PICKLE_BYTES and every other record at most
  MAX_RECORD_BYTES uncompressed (a deflated entry is judged by what it inflates to);
- the pickle, read once with ``weights_only=True`` and every tensor on the ``meta`` device (no
  storage is read), so no code in it runs; nesting at most MAX_NESTING deep and MAX_VALUES values
  (``too_nested``, walked without recursion, before anything is shown);
- the tensor data: no record larger than the largest tensor the pickle declares nor more in all
  (``check_records``), none compressed (torch.save never compresses), each read into the tensors
  that declared it. The caller adds its own bounds on what the tensors may take.

The pickle is read once per file: torch notes where each tensor's record starts while it builds
the meta tensors, and ``read_tensors`` reads from there. The archive last opened is remembered
(by its listing, which holds every record's CRC), so ``sr.checkpoint.is_checkpoint`` and the load
that follows it read the pickle once between them.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import torch

from sr.errors import UserError, first_line, short_repr

# The archive. Our data.pkl is 1-13 KB (a training run's, with optimizer and args, the largest).
MAX_ENTRIES = 10_000
MAX_PICKLE_BYTES = 4 << 20
MAX_RECORD_BYTES = 4096  # version, byteorder, .format_version, ...: a few bytes each
MAX_NESTING = 16  # a training checkpoint nests 4 deep (optimizer.state.0.exp_avg)
MAX_VALUES = 1_000_000  # a training run's checkpoint holds a few thousand
# The records torch.save writes besides data.pkl and data/<n>.
_SMALL_RECORDS = {"version", ".format_version", ".storage_alignment", "byteorder", ".data/serialization_id", ".data/version"}


class Archive(NamedTuple):
    """A torch.save file whose listing passed and whose pickle was read, no tensor data yet."""

    path: Path
    skeleton: Any  # what the pickle holds, every tensor on the meta device (shapes and dtypes, no data)
    records: dict[int, int]  # each data/<n> record: where its data starts in the file -> its uncompressed size
    compressed: list[str]  # records stored compressed, which torch.save never writes
    byteorder: str  # the byte order the tensors were written in ("little" where the record is missing)

    @property
    def stored(self) -> list[int]:
        return list(self.records.values())


_last_opened: tuple[tuple, Archive] | None = None  # (the file's identity and listing, what was read)


def torch_load(path: Path, device: str) -> Any:
    """``torch.load`` with ``weights_only=True``; UserError naming what refused it."""
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
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AssertionError) as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line(exc, 120)})") from None


def open_archive(path: str | Path, what: str = "a checkpoint of this project") -> Archive:
    """Check ``path``'s zip listing, then read its pickle once with every tensor on the meta device.

    ``what`` names what the file should be, for the refusal. UserError for anything torch.save
    does not write or that is over its bound (see the module docstring).
    """
    global _last_opened
    path = Path(path)
    entries, identity = _listing(path, what)
    if _last_opened is not None and _last_opened[0] == identity:
        return _last_opened[1]
    folder = entries[0].filename.split("/", 1)[0]
    records, compressed = {}, []
    with open(path, "rb") as f:
        for number, entry in enumerate(e for e in entries if e.filename.partition("/")[2].startswith("data/")):
            # Where the data starts: after the entry's local header (30 bytes, then its name and extra field).
            f.seek(entry.header_offset)
            header = f.read(30)
            start = (entry.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
                     if header[:4] == b"PK\x03\x04" and len(header) == 30 else -1 - number)  # unknown: matches no tensor
            records[start] = entry.file_size
            if entry.compress_type != zipfile.ZIP_STORED:
                compressed.append(entry.filename)
    with zipfile.ZipFile(path) as archive:
        try:
            byteorder = archive.read(f"{folder}/byteorder").decode("ascii", "replace")
        except KeyError:  # archives from before torch wrote it: little-endian
            byteorder = "little"
    archive = Archive(path, torch_load(path, "meta"), records, compressed, byteorder)
    _last_opened = (identity, archive)
    return archive


def _listing(path: Path, what: str) -> tuple[list[zipfile.ZipInfo], tuple]:
    """The archive's entries, each checked against what torch.save writes; and what identifies
    the file's content (its inode, mtime and every entry's name, size, offset and CRC)."""
    def refuse(problem: str) -> NoReturn:
        raise UserError(f"{path}: not {what} ({problem})")

    with open(path, "rb") as f:
        magic = f.read(4)
        stat = os.fstat(f.fileno())
    if magic[:2] == b"\x80\x02":  # a pickle: torch.save before PyTorch 1.6, or torch.save(..., _use_new_zipfile_serialization=False)
        refuse("PyTorch's old pickle format, whose tensor sizes cannot be checked before they are read; "
               "re-save it with a current torch.save, or as .safetensors")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()[: MAX_ENTRIES + 1]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt? {first_line(exc, 120)})") from None
    if len(entries) > MAX_ENTRIES:
        refuse(f"its archive has over {MAX_ENTRIES:,} entries (MAX_ENTRIES in sr/torch_archive.py)")
    if not entries:
        refuse("its archive is empty")
    folder = entries[0].filename.split("/", 1)[0]
    pickles = 0
    for entry in entries:
        top, _, name = entry.filename.partition("/")
        if top != folder or not name:
            refuse(f"its archive holds {short_repr(entry.filename)} outside the {folder!r} folder")
        if name == "data.pkl":
            pickles += 1
            limit = MAX_PICKLE_BYTES
        elif name.startswith("data/") and name[5:].isdigit():
            continue
        elif name in _SMALL_RECORDS:
            limit = MAX_RECORD_BYTES
        else:
            refuse(f"its archive holds {short_repr(entry.filename)}, which torch.save does not write")
        if entry.file_size > limit:
            refuse(f"{entry.filename} is {entry.file_size:,} bytes uncompressed, over the limit of {limit:,}")
    if pickles != 1:
        refuse("its archive has no data.pkl")
    identity = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
                tuple((e.filename, e.file_size, e.compress_size, e.header_offset, e.CRC) for e in entries))
    return entries, identity


def storages_declared(state: Any) -> list[int]:
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


def check_records(archive: Archive) -> None:
    """No record in the archive larger than the largest tensor the pickle declares, and no more in all."""
    declared = storages_declared(archive.skeleton)
    largest = max(declared, default=0)
    for size in archive.stored:
        if size > largest:
            raise UserError(f"{archive.path}: the archive holds a tensor record of {size:,} bytes uncompressed, larger than "
                            f"any tensor it declares ({largest:,} bytes); not read")
    if sum(archive.stored) > sum(declared):
        raise UserError(f"{archive.path}: the archive's tensor records take {sum(archive.stored):,} bytes uncompressed, "
                        f"more than the {sum(declared):,} its tensors declare; not read")


def too_nested(value: Any) -> str | None:
    """What is wrong with how ``value``'s containers nest, or None. Walked without recursion
    and at most MAX_VALUES values, so a list 100,000 deep, one that holds itself, or one
    shared a thousand times over ends the walk early."""
    todo, seen = [(value, 0)], 0
    while todo:
        value, depth = todo.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"holds over {MAX_VALUES:,} values (MAX_VALUES in sr/torch_archive.py)"
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            if depth >= MAX_NESTING:
                return f"nests containers over {MAX_NESTING} deep (MAX_NESTING in sr/torch_archive.py)"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            todo.extend((item, depth + 1) for item in items)
    return None


def read_tensors(archive: Archive) -> Any:
    """The skeleton with every tensor on the CPU, its data read from its record; for an archive
    whose skeleton and records the caller has checked (``check_records`` and its own bounds)."""
    if archive.compressed:
        raise UserError(f"{archive.path}: the archive holds {archive.compressed[0]} compressed, which torch.save does "
                        "not write; not read")
    offsets = {id(t): getattr(t.untyped_storage(), "_checkpoint_offset", None) for t in _tensors(archive.skeleton)}
    found = all(archive.records.get(offsets[id(t)], -1) >= t.untyped_storage().nbytes() for t in _tensors(archive.skeleton))
    if archive.byteorder != sys.byteorder or not found:
        # Tensors to byte-swap, or records not where torch noted (an older torch, another writer): torch
        # reads them itself, in a second pass; the bounds above were checked all the same.
        return torch_load(archive.path, "cpu")
    storages: dict[int, torch.UntypedStorage] = {}
    with open(archive.path, "rb") as f:
        def storage(tensor: torch.Tensor) -> torch.UntypedStorage:
            offset, size = offsets[id(tensor)], tensor.untyped_storage().nbytes()
            if offset not in storages:  # views of one storage share its record
                data = torch.empty(size, dtype=torch.uint8)  # torch's own allocation: aligned, as torch.load's
                f.seek(offset)
                if f.readinto(data.numpy()) != size:
                    raise UserError(f"{archive.path}: not a readable PyTorch checkpoint (truncated: a tensor record ends early)")
                storages[offset] = data.untyped_storage()
            return storages[offset]

        def real(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return torch.empty(0, dtype=value.dtype).set_(storage(value), value.storage_offset(), value.shape, value.stride())
            if isinstance(value, dict):
                return type(value)((key, real(item)) for key, item in value.items())
            if isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
                return type(value)(real(item) for item in value)
            return value

        return real(archive.skeleton)


def _tensors(value: Any) -> list[torch.Tensor]:
    found, todo = [], [value]
    while todo:
        value = todo.pop()
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend(value)
    return found


def load_state_file(path: str | Path, max_bytes: int, max_tensors: int) -> Any:
    """What a torch.save archive that is not ours holds (a community model's state_dict), on the CPU,
    under the archive's bounds: its listing, then the pickle on the meta device (nesting, at most
    ``max_tensors`` tensors of at most ``max_bytes`` together), then the records against that."""
    archive = open_archive(path, "a weights file this enlarger reads")
    nesting = too_nested(archive.skeleton)
    if nesting:
        raise UserError(f"{archive.path}: {nesting}")
    declared = storages_declared(archive.skeleton)
    if len(declared) > max_tensors:
        raise UserError(f"{archive.path}: holds {len(declared):,} tensors, over the limit of {max_tensors:,}")
    if sum(declared) > max_bytes:
        raise UserError(f"{archive.path}: its tensors take {sum(declared):,} bytes, over the limit of {max_bytes:,}")
    check_records(archive)
    return read_tensors(archive)
