import os
import stat

import pytest
import torch

from sr.checkpoint import bare_module, load_checkpoint, save_checkpoint
from sr.errors import UserError
from sr.models import create_model


def _state():
    model, kwargs = create_model("fsrcnn", 3)
    return dict(arch="fsrcnn", model_kwargs=kwargs, scale=3, color="y", layout="upsampled", model=model.state_dict())


def test_a_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, dict(_state(), epoch=1))

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, dict(_state(), epoch=2))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # no temporary file left behind


def test_truncated_foreign_and_garbage_files_are_refused(tmp_path):
    good = tmp_path / "good.pth"
    save_checkpoint(good, _state())
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")
    torch.save(create_model("srcnn", 3)[0].state_dict(), tmp_path / "bare.pth")
    with pytest.raises(UserError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "bare.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00\x01junk" * 10)
    with pytest.raises(UserError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pth")


class Anything:
    pass


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    torch.save({"format": "sr-checkpoint-v1", "payload": Anything()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="not a readable"):
        load_checkpoint(tmp_path / "evil.pth")


def test_bare_module_unwraps_compile():
    model, _ = create_model("srcnn", 3)
    compiled = torch.compile(model)
    assert bare_module(compiled) is model
    assert list(bare_module(compiled).state_dict()) == list(model.state_dict())  # no _orig_mod. prefix


def test_a_checkpoint_gets_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "best.pth", _state())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "best.pth").stat().st_mode) == 0o644  # not mkstemp's 0600
