"""Every file the project writes goes through here: a reader sees the old file or the new one, never half.

The data goes to a temporary file in the target's folder (so the final rename stays on one
file system), is flushed and fsync'ed, and replaces the target in one ``os.replace``, after
which the folder is fsync'ed too (so the rename itself survives a crash);
Ctrl-C is held during the rename. On any failure the temporary file is removed and the
old target is left as it was. The temporary name keeps the target's extension at its
end, so writers that pick a format by extension (Pillow, h5py, ONNX) behave the same.

A process killed outright (kill -9, power loss) cannot remove its temporary file. So each writer
holds a lock on its temporary file while it writes (an open file description lock, which the
kernel drops when the process dies), and the next write of the same target removes any of
its temporary files that nobody holds. HDF5 takes its own lock on the file it writes, so the
HDF5 writers go without (``lock=False``) and their leftovers are not cleaned.

    with atomic_path("out/photo.png") as tmp:
        image.save(tmp)
    atomic_write_text("scores.json", text)
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sr.errors import UserError
from sr.interrupts import deferred_interrupt


def _create_beside(path: Path) -> Path:
    """A new, empty file in ``path``'s folder, with ``path``'s extension at the end of its name.

    Like mkstemp (O_EXCL, a random name), but created with mode 0666 so that the kernel applies
    the umask itself, as for any ordinary file: reading the umask means setting it, which
    would change it for every thread of the process for a moment.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


try:  # Linux's open file description locks: per open file, dropped when the process dies
    from fcntl import F_OFD_SETLK, F_RDLCK, F_WRLCK, fcntl
except ImportError:  # macOS, Windows: no cleaning of temporary files
    F_OFD_SETLK = None


def _lock(fd: int, kind: int) -> bool:
    """Take a ``kind`` lock on the whole file behind ``fd`` without waiting; False if another holds one."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0, as open file description locks want)
    try:
        fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi", kind, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _hold(tmp: Path) -> int | None:
    """Open ``tmp`` and hold a shared lock on it for as long as the descriptor is open: the mark of a
    writer that is alive. None where there are no such locks."""
    if F_OFD_SETLK is None:
        return None
    fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        _lock(fd, F_RDLCK)  # shared: a second reader of the lock never fails, only a cleaner's exclusive one
    except OSError:
        os.close(fd)
        return None  # a file system without these locks: the write goes on, unmarked
    return fd


def _remove_stale_beside(path: Path) -> None:
    """Remove temporary files of ``path`` that no living writer holds (left by a killed one)."""
    if F_OFD_SETLK is None:
        return
    ours = re.compile(re.escape(f".{path.stem}.") + "[0-9a-f]{8}" + re.escape(f".tmp{path.suffix}"))
    try:
        names = [entry.name for entry in os.scandir(path.parent) if ours.fullmatch(entry.name)]
    except OSError:
        return
    for name in names:
        try:
            fd = os.open(path.parent / name, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # gone already, or not ours to open
        try:
            if _lock(fd, F_WRLCK):  # no writer holds it: its process is gone
                os.unlink(path.parent / name)
        except OSError:
            pass  # a file system without these locks: leave it
        finally:
            os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: the new name is in the folder's entries on disk."""
    if os.name != "posix":  # Windows cannot open a folder; its renames are journaled by NTFS
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary file beside ``path``; ``commit()`` puts it in place, ``abort()`` drops it.

    For writers that keep a file open across calls (the HDF5 writers); most code wants
    ``atomic_path``. ``lock``: mark the temporary file as being written, and first remove the
    unmarked ones a killed writer of ``path`` left (see the module docstring).
    """

    def __init__(self, path: str | Path, lock: bool = True):
        self.path = Path(path)
        self._held: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if lock:
                _remove_stale_beside(self.path)
            self.tmp = _create_beside(self.path)
            if lock:
                self._held = _hold(self.tmp)
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def _release(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

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
        self._release()
        try:
            _fsync_folder(self.path.parent)  # else a crash can lose the rename, and the file with it
        except OSError as exc:
            if exc.errno == errno.EIO:  # the disk failed; a folder that cannot be fsync'ed (EINVAL) is no error
                raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)
        self._release()


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
