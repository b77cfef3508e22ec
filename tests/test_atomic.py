"""sr.atomic, and the writers built on it here (checkpoints, HDF5 patch files): a failure in
the middle of a write leaves the old file as it was and no temporary file behind."""

import errno
import os
import signal
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import sr.atomic
from sr.atomic import AtomicFile, atomic_path, atomic_write_bytes, atomic_write_text
from sr.checkpoint import load_checkpoint, save_checkpoint
from sr.data.h5 import EvalWriter, PatchWriter, read_attrs
from sr.errors import UserError
from tests.conftest import weights_only_checkpoint


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _disk_full():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- the helper


def test_text_and_bytes_replace_the_file_with_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "sub" / "scores.json", "{}\n")  # the folder is made
        atomic_write_bytes(tmp_path / "blob.bin", b"\x00\x01")
        atomic_write_text(tmp_path / "sub" / "scores.json", '{"psnr": 30}\n')
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "scores.json").read_text() == '{"psnr": 30}\n'
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"
    assert stat.S_IMODE((tmp_path / "blob.bin").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert _names(tmp_path) == ["blob.bin", "sub"] and _names(tmp_path / "sub") == ["scores.json"]


def test_the_temporary_file_is_beside_the_target_and_keeps_its_extension(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"old")
    with atomic_path(tmp_path / "photo.png") as tmp:
        assert tmp.parent == tmp_path  # same file system: the rename is atomic
        assert tmp.name.startswith(".photo.") and tmp.name.endswith(".tmp.png")  # Pillow, h5py, ONNX pick formats by it
        tmp.write_bytes(b"new")
        assert (tmp_path / "photo.png").read_bytes() == b"old"  # a reader sees the old file until the rename
    assert (tmp_path / "photo.png").read_bytes() == b"new"
    assert _names(tmp_path) == ["photo.png"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, ValueError])
def test_a_failure_inside_the_block_keeps_the_old_file_and_removes_the_temporary(tmp_path, failure):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(failure):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half of the n")
            raise failure("in the middle")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert _names(tmp_path) == ["a.txt"]


def test_a_failed_write_is_one_line_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "a.bin").write_bytes(b"old")
    real = Path.write_bytes

    def half_then_disk_full(self, data):
        real(self, data[: len(data) // 2])
        raise _disk_full()

    monkeypatch.setattr(Path, "write_bytes", half_then_disk_full)
    with pytest.raises(UserError) as info:
        atomic_write_bytes(tmp_path / "a.bin", b"new content")
    assert str(info.value) == f"cannot write {tmp_path / 'a.bin'}: No space left on device"
    monkeypatch.undo()
    assert (tmp_path / "a.bin").read_bytes() == b"old" and _names(tmp_path) == ["a.bin"]


def test_a_failed_rename_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old")

    def broken_replace(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(sr.atomic.os, "replace", broken_replace)
    with pytest.raises(UserError, match=r"^cannot write .*a\.txt: Invalid cross-device link$"):
        atomic_write_text(tmp_path / "a.txt", "new")
    monkeypatch.undo()
    assert (tmp_path / "a.txt").read_text() == "old" and _names(tmp_path) == ["a.txt"]


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=r"^cannot write .*file/out\.txt: "):
        atomic_write_text(tmp_path / "file" / "out.txt", "x")
    with pytest.raises(UserError, match=r"^cannot write "):
        AtomicFile(tmp_path / "file" / "x.h5")


# --- checkpoints


def _state(epoch: int) -> dict:
    return dict(weights_only_checkpoint("fsrcnn", 3), epoch=epoch)


def test_a_checkpoint_write_that_fails_half_way_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, _state(1))
    real_save = torch.save
    seen = []

    def half_then_disk_full(obj, f):
        seen.append(Path(f.name))
        real_save(obj, f)
        f.truncate(f.tell() // 2)
        raise _disk_full()

    monkeypatch.setattr(torch, "save", half_then_disk_full)
    with pytest.raises(UserError, match=r"^cannot write .*last\.pth: No space left on device$"):
        save_checkpoint(path, _state(2))
    monkeypatch.undo()
    assert seen[0].parent == tmp_path and seen[0].name.endswith(".tmp.pth")
    assert load_checkpoint(path)["epoch"] == 1
    assert _names(tmp_path) == ["last.pth"]


def test_ctrl_c_during_a_checkpoint_write_waits_until_the_file_is_in_place(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, _state(1))
    real_save = torch.save

    def save_with_ctrl_c(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # lands in the middle of the write
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _state(2))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 2  # the write finished, then the interrupt came
    assert _names(tmp_path) == ["last.pth"]


# --- HDF5 patch files

ATTRS = dict(kind="train", scale=2, layout="lr-hr", color="y")


def _patches(value: int, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, 1, 4, 4), value, np.uint8), np.full((n, 1, 8, 8), value, np.uint8)


def test_a_patch_file_that_fails_half_way_keeps_the_old_one(tmp_path):
    path = tmp_path / "train.h5"
    writer = PatchWriter(path, (1, 4, 4), (1, 8, 8), ATTRS)
    writer.append(*_patches(1))
    writer.commit(patches=writer.count)

    # prepare_h5.py's shape: append image by image, abort on any failure
    writer = PatchWriter(path, (1, 4, 4), (1, 8, 8), ATTRS)
    assert writer.target.tmp.parent == tmp_path and writer.target.tmp.name.endswith(".tmp.h5")
    with pytest.raises(KeyboardInterrupt):
        try:
            writer.append(*_patches(2))
            assert read_attrs(path, "train")["patches"] == 3  # readers still see the old file
            raise KeyboardInterrupt  # Ctrl-C between two images
        except BaseException:
            writer.abort()
            raise
    assert _names(tmp_path) == ["train.h5"]
    with h5py.File(path, "r") as f:
        assert f["lr"].shape == (3, 1, 4, 4) and (f["hr"][...] == 1).all() and f.attrs["patches"] == 3


def test_a_patch_file_whose_rename_fails_is_one_line_and_leaves_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "eval.h5"
    writer = EvalWriter(path, dict(ATTRS, kind="eval"))
    writer.add("a", *_patches(1, 1))
    writer.commit(images=1)

    writer = EvalWriter(path, dict(ATTRS, kind="eval"))
    writer.add("b", *_patches(2, 1))
    monkeypatch.setattr(sr.atomic.os, "replace", lambda src, dst: (_ for _ in ()).throw(_disk_full()))
    with pytest.raises(UserError, match=r"^cannot write .*eval\.h5: No space left on device$"):
        try:
            writer.commit(images=1)
        except BaseException:
            writer.abort()  # as prepare_h5.py does; safe after a failed commit
            raise
    monkeypatch.undo()
    assert _names(tmp_path) == ["eval.h5"]
    with h5py.File(path, "r") as f:
        assert list(f["images"]) == ["a"]


def test_a_patch_file_in_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"^cannot write .*file/train\.h5: "):
        PatchWriter(tmp_path / "file" / "train.h5", (1, 4, 4), (1, 8, 8), ATTRS)


def test_a_patch_file_hdf5_cannot_open_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(h5py, "File", refuse)
    with pytest.raises(UserError, match=r"^cannot write .*train\.h5: Permission denied$"):
        PatchWriter(tmp_path / "train.h5", (1, 4, 4), (1, 8, 8), ATTRS)
    assert _names(tmp_path) == []


def test_a_metrics_row_that_fails_half_way_leaves_the_earlier_rows_intact(tmp_path, monkeypatch):
    import csv

    from sr.training import run_dir

    run = run_dir.RunDir(tmp_path / "run", resuming=False)
    run.begin({"arch": "srcnn"}, 0)
    run.append_metrics({"epoch": 1, "loss": "0.5", "psnr": "30.0"})
    before = run.metrics.read_text()

    class HalfWriter(csv.DictWriter):
        def writerow(self, row):
            self.writer.writerow(["2", "0.4"])  # half a row reaches the temporary file...
            raise OSError(28, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(run_dir.csv, "DictWriter", HalfWriter)
    with pytest.raises(UserError, match="cannot write .*metrics.csv: No space left on device"):
        run.append_metrics({"epoch": 2, "loss": "0.4", "psnr": "30.5"})
    assert run.metrics.read_text() == before
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []


# --- issue 21: no process-wide umask change; the rename itself is made durable


def test_the_umask_is_never_changed_yet_the_file_gets_the_usual_mode(tmp_path, monkeypatch):
    # Row 11: reading the umask by setting it (os.umask(0), then back) changed it for every
    # thread of the process for a moment; a file another thread made then was world-writable.
    old = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("os.umask called: the process umask would change for every thread")

        monkeypatch.setattr(os, "umask", no_umask)
        atomic_write_text(tmp_path / "scores.json", "{}\n")
        monkeypatch.undo()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "scores.json").stat().st_mode) == 0o640


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append("rename"), real_replace(src, dst)))
    atomic_write_text(tmp_path / "scores.json", "{}\n")
    assert events == ["fsync file", "rename", "fsync folder"]


KILLED_MID_WRITE = """
import os, signal, sys
from sr.atomic import atomic_path

with atomic_path(sys.argv[1]) as tmp:  # what save_checkpoint does around torch.save
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 while the temporary file is being written
"""


def test_the_temporary_file_of_a_killed_write_is_removed_by_the_next_save(tmp_path):
    # Issue 32: kill -9 during a checkpoint write left a hidden 0-byte temporary beside last.pth for good.
    import subprocess
    import sys

    from tests.conftest import ROOT

    last = tmp_path / "last.pth"
    result = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(last)], cwd=ROOT, capture_output=True)
    assert result.returncode == -signal.SIGKILL
    (stale,) = tmp_path.iterdir()
    assert stale.name.startswith(".last.") and stale.name.endswith(".tmp.pth")
    (tmp_path / ".notes.txt").write_text("a hidden file of the user's, not a temporary of ours")
    save_checkpoint(last, weights_only_checkpoint("srcnn", 3))
    assert _names(tmp_path) == [".notes.txt", "last.pth"]


def test_a_write_in_progress_keeps_its_temporary_file_when_another_save_cleans_up(tmp_path):
    # The temporary file of a writer still running (here one open in this process) is not stale.
    target = tmp_path / "last.pth"
    running = AtomicFile(target)
    running.tmp.write_bytes(b"half a checkpoint")
    save_checkpoint(target, weights_only_checkpoint("srcnn", 3))
    assert running.tmp.exists()
    running.commit()
    assert _names(tmp_path) == ["last.pth"] and target.read_bytes() == b"half a checkpoint"
