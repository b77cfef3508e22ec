"""Every file the project writes goes through here: a reader sees the old file or the new one, never half.

The data goes to a temporary file in the target's folder (so the final rename stays on one
file system), is flushed and fsync'ed, and replaces the target in one ``os.replace``;
Ctrl-C is held during the rename. On any failure the temporary file is removed and the
old target is left as it was. The temporary name keeps the target's extension at its
end, so writers that pick a format by extension (Pillow, h5py, ONNX) behave the same.

    with atomic_path("out/photo.png") as tmp:
        image.save(tmp)
    atomic_write_text("scores.json", text)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sr.errors import UserError
from sr.interrupts import deferred_interrupt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicFile:
    """A temporary file beside ``path``; ``commit()`` puts it in place, ``abort()`` drops it.

    For writers that keep a file open across calls (the HDF5 writers); most code wants
    ``atomic_path``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}", dir=self.path.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result is an ordinary file
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.tmp = Path(tmp)

    def commit(self) -> None:
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data is on disk before the name points at it
            finally:
                os.close(fd)
            with deferred_interrupt():
                os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; it replaces ``path`` when
    the block ends without an exception, and is removed otherwise."""
    target = AtomicFile(path)
    try:
        yield target.tmp
    except OSError as exc:
        target.abort()
        raise UserError(f"cannot write {target.path}: {exc.strerror or exc}") from None
    except BaseException:
        target.abort()
        raise
    target.commit()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
