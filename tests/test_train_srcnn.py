import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import eval as eval_script
import sr.training
import train_srcnn
from sr.checkpoint import load_checkpoint
from sr.errors import Interrupted, UserError
from tests.conftest import ROOT, make_h5


def _train(h5, out, *extra):
    train, evaluation = h5
    argv = ["--train", str(train), "--eval", str(evaluation), "--out", str(out), "--device", "cpu",
            "--batch-size", "16", "--epochs", "2", *extra]
    return train_srcnn.main(train_srcnn.parse_args(argv))


def _metrics(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_prepare_train_eval_end_to_end(tmp_path, h5_x3, image_folders, capsys):
    result = _train(h5_x3, tmp_path / "run", "--arch", "fsrcnn", "--loss", "l1", "--lr", "3e-3")
    printed = capsys.readouterr()
    rows = _metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "psnr", "ssim", "lr", "seconds", "samples_per_s"}
    assert float(rows[1]["lr"]) == 0.0  # cosine annealing reaches zero at the end of the run
    assert "eval psnr: " in printed.out and "epoch: 2/2" in printed.err and "loss=" in printed.err
    for name in ("last.pth", "best.pth", "args.json"):
        assert (tmp_path / "run" / name).exists()
    assert json.loads((tmp_path / "run" / "args.json").read_text())["arch"] == "fsrcnn"
    best = load_checkpoint(tmp_path / "run" / "best.pth")
    assert best["arch"] == "fsrcnn" and best["scale"] == 3 and best["layout"] == "upsampled"
    assert best["best_psnr"] == pytest.approx(max(float(r["psnr"]) for r in rows), abs=1e-4)
    # eval.py on the checkpoint gives the number the run printed: one code path for both.
    summary = eval_script.main(eval_script.parse_args(
        ["--weights", str(tmp_path / "run" / "best.pth"), "--dataset", str(image_folders["eval"]), "--device", "cpu"]))
    assert summary["model_mean"]["psnr"] == pytest.approx(best["best_psnr"], abs=1e-3)
    assert result["best_psnr"] == best["best_psnr"]


def test_resume_after_an_interrupt_continues_the_same_run(tmp_path, h5_x3, monkeypatch):
    _train(h5_x3, tmp_path / "straight")
    straight = load_checkpoint(tmp_path / "straight" / "last.pth")

    calls = {"n": 0}
    real_to_device = sr.training.to_device

    def stop_in_epoch_one(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 * 3 + 1:  # two tensors per batch: stop at the 4th batch
            raise KeyboardInterrupt
        return real_to_device(*args, **kwargs)

    monkeypatch.setattr(sr.training, "to_device", stop_in_epoch_one)
    with pytest.raises(Interrupted, match=r"interrupted at epoch 1, batch 3; saved .*last.pth; continue with: python train_srcnn.py --resume"):
        _train(h5_x3, tmp_path / "split")
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "split" / "last.pth")
    assert (saved["epoch"], saved["step"]) == (0, 3)
    train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "split" / "last.pth"), "--device", "cpu"]))
    resumed = load_checkpoint(tmp_path / "split" / "last.pth")
    assert resumed["epoch"] == 2
    assert resumed["scheduler"]["last_epoch"] == straight["scheduler"]["last_epoch"]
    steps = [s["step"].item() for s in resumed["optimizer"]["state"].values()]
    assert steps == [s["step"].item() for s in straight["optimizer"]["state"].values()]
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key], value, atol=1e-6), key
    assert [r["epoch"] for r in _metrics(tmp_path / "split")] == ["1", "2"]
    assert [r["loss"] for r in _metrics(tmp_path / "split")] == [r["loss"] for r in _metrics(tmp_path / "straight")]


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, h5_x3, monkeypatch):
    real = sr.training.content_loss
    calls = {"n": 0}

    def poisoned(name):
        criterion = real(name)

        def loss(pred, target):
            calls["n"] += 1
            value = criterion(pred, target)
            return value * float("nan") if calls["n"] > 9 else value  # epoch 1 has 7 batches

        return loss

    monkeypatch.setattr(sr.training, "content_loss", poisoned)
    with pytest.raises(UserError, match="diverged: the loss became NaN or infinite at epoch 2.*last good checkpoint is"):
        _train(h5_x3, tmp_path / "run", "--epochs", "3")
    kept = load_checkpoint(tmp_path / "run" / "last.pth")
    assert kept["epoch"] == 1 and all(torch.isfinite(v).all() for v in kept["model"].values())


def test_files_that_do_not_fit_the_model_are_refused(tmp_path, h5_x3, image_folders):
    with pytest.raises(UserError, match=r"does not fit the model: scale 3 \(need 2\)"):
        _train(h5_x3, tmp_path / "a", "--scale", "2")
    with pytest.raises(UserError, match=r"layout 'upsampled' \(need 'lr-hr'\).*prepare_h5.py --scale 3 --layout lr-hr"):
        _train(h5_x3, tmp_path / "b", "--arch", "fsrcnn-paper")
    with pytest.raises(UserError, match=r"color 'y' \(need 'rgb'\)"):
        _train(h5_x3, tmp_path / "c", "--color", "rgb")
    with pytest.raises(UserError, match="not a train file"):
        _train((h5_x3[1], h5_x3[1]), tmp_path / "d")
    with pytest.raises(UserError, match="no such file; make it with: python prepare_h5.py --scale 3"):
        _train((tmp_path / "none.h5", h5_x3[1]), tmp_path / "e")


def test_run_folders_are_protected(tmp_path, h5_x3):
    _train(h5_x3, tmp_path / "run", "--epochs", "1")
    with pytest.raises(UserError, match="already holds a run; continue it with --resume"):
        _train(h5_x3, tmp_path / "run", "--epochs", "1")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write to the run folder"):
        _train(h5_x3, tmp_path / "file" / "run")
    with pytest.raises(UserError, match="--epochs 5 differs from the resumed run's 1"):
        train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "run" / "last.pth"), "--epochs", "5"]))


def test_ctrl_c_while_an_epoch_is_saved_keeps_that_epoch_whole(tmp_path, h5_x3, monkeypatch):
    # The race CI once hit: SIGINT right after last.pth appears, while best.pth is written.
    real_save = sr.training.save_checkpoint

    def save_then_ctrl_c(path, state):
        if path.name == "best.pth" and state["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real_save(path, state)

    monkeypatch.setattr(sr.training, "save_checkpoint", save_then_ctrl_c)
    with pytest.raises(Interrupted, match=r"interrupted at epoch 1, after its checkpoint; saved .*last.pth"):
        _train(h5_x3, tmp_path / "run", "--epochs", "3")
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "run" / "last.pth")
    assert (saved["epoch"], saved["step"]) == (1, 0)
    assert load_checkpoint(tmp_path / "run" / "best.pth")["epoch"] == 1
    assert [r["epoch"] for r in _metrics(tmp_path / "run")] == ["1"]
    train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "run" / "last.pth"), "--device", "cpu"]))
    assert [r["epoch"] for r in _metrics(tmp_path / "run")] == ["1", "2", "3"]


@pytest.fixture(scope="module")
def augmented_x3(tmp_path_factory, image_folders):
    return make_h5(tmp_path_factory.mktemp("aug"), image_folders, 3, "--stride", "9", "--augment")


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, augmented_x3):
    train, evaluation = augmented_x3
    out = tmp_path / "run"
    # ~250 small batches per epoch: long enough to be interrupted inside an epoch.
    cmd = [sys.executable, "train_srcnn.py", "--train", str(train), "--eval", str(evaluation), "--out", str(out),
           "--arch", "fsrcnn", "--device", "cpu", "--batch-size", "4", "--epochs", "6"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "last.pth").exists() and time.time() < deadline:  # wait for epoch 1 to end
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    last_line = err.strip().splitlines()[-1].split("\r")[-1]
    assert "Traceback" not in err and last_line.startswith("train_srcnn.py: interrupted at epoch")
    state = load_checkpoint(out / "last.pth")
    assert state["epoch"] < 6  # interrupted inside an epoch, or during the eval that ends one
    result = train_srcnn.main(train_srcnn.parse_args(["--resume", str(out / "last.pth"), "--device", "cpu"]))
    assert load_checkpoint(out / "last.pth")["epoch"] == 6
    assert [r["epoch"] for r in _metrics(out)] == [str(e) for e in range(1, 7)]
    assert result["best_psnr"] == pytest.approx(max(float(r["psnr"]) for r in _metrics(out)), abs=1e-4)


def test_init_starts_another_scale_from_trained_weights(tmp_path, h5_x3, image_folders):
    h5_x2 = make_h5(tmp_path, image_folders, 2, "--stride", "9")
    _train(h5_x3, tmp_path / "x3", "--epochs", "1")
    x3 = load_checkpoint(tmp_path / "x3" / "last.pth")
    _train(h5_x2, tmp_path / "x2", "--scale", "2", "--epochs", "1", "--lr", "1e-12", "--init", str(tmp_path / "x3" / "last.pth"))
    x2 = load_checkpoint(tmp_path / "x2" / "last.pth")
    assert x2["scale"] == 2
    for key, value in x3["model"].items():  # a vanishing learning rate: still the x3 weights
        assert torch.allclose(x2["model"][key], value, atol=1e-6), key
    with pytest.raises(UserError, match="holds srcnn \\(y\\), not fsrcnn \\(y\\)"):
        _train(h5_x2, tmp_path / "bad", "--scale", "2", "--arch", "fsrcnn", "--init", str(tmp_path / "x3" / "last.pth"))


def test_lazy_loading_with_workers_trains_like_in_memory(tmp_path, h5_x3):
    _train(h5_x3, tmp_path / "memory", "--epochs", "1", "--no-amp")
    _train(h5_x3, tmp_path / "lazy", "--epochs", "1", "--no-amp", "--load", "lazy", "--workers", "2")
    memory, lazy = _metrics(tmp_path / "memory")[0], _metrics(tmp_path / "lazy")[0]
    # The same batches (only their order inside a batch differs): the same run up to rounding.
    assert float(lazy["loss"]) == pytest.approx(float(memory["loss"]), rel=1e-4)
    assert float(lazy["psnr"]) == pytest.approx(float(memory["psnr"]), abs=1e-3)
