import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import eval as eval_script
import sr.precision
import sr.training.run_dir
import train_srcnn
from sr import distributed
from sr.checkpoint import load_checkpoint, save_checkpoint
from sr.cli import run
from sr.data.h5 import PatchDataset
from sr.errors import Interrupted, UserError
from sr.models import create_model
from sr.precision import choose_precision
from sr.training.loader import DeviceBatches, LoaderBatches, make_batches
from tests.conftest import ROOT, interrupt_at_call, make_h5, read_metrics


def _train(h5, out, *extra):
    train, evaluation = h5
    argv = ["--train", str(train), "--eval", str(evaluation), "--out", str(out), "--device", "cpu",
            "--batch-size", "16", "--epochs", "2", *extra]
    return train_srcnn.main(train_srcnn.parse_args(argv))


def test_prepare_train_eval_end_to_end(tmp_path, h5_x3, image_folders, capsys):
    result = _train(h5_x3, tmp_path / "run", "--arch", "fsrcnn", "--loss", "l1", "--lr", "3e-3")
    printed = capsys.readouterr()
    rows = read_metrics(tmp_path / "run")
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

    interrupt_at_call(monkeypatch, 2 * 3 + 1)  # at the 4th batch of epoch 1
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
    assert [r["epoch"] for r in read_metrics(tmp_path / "split")] == ["1", "2"]
    assert [r["loss"] for r in read_metrics(tmp_path / "split")] == [r["loss"] for r in read_metrics(tmp_path / "straight")]


def test_ema_is_what_is_scored_and_saved_and_resumes_with_the_trained_weights(tmp_path, h5_x3, monkeypatch):
    flags = ("--arch", "fsrcnn", "--ema", "0.9", "--last-layer-lr", "0.1")
    _train(h5_x3, tmp_path / "straight", *flags)
    straight = load_checkpoint(tmp_path / "straight" / "last.pth")
    steps = straight["scheduler"]["last_epoch"]
    assert straight["ema_updates"] == steps
    # "model" is the average (what eval.py, --init and export read), "trained_model" what Adam moved.
    assert any(not torch.equal(straight["model"][k], v) for k, v in straight["trained_model"].items())
    net, _ = create_model("fsrcnn", 3)
    net.load_state_dict(straight["model"])
    rows = read_metrics(tmp_path / "straight")
    best = load_checkpoint(tmp_path / "straight" / "best.pth")
    assert best["best_psnr"] == pytest.approx(max(float(r["psnr"]) for r in rows), abs=1e-4)
    # The last layer (the deconvolution) annealed from a tenth of the others' rate.
    groups = straight["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == pytest.approx([1e-3, 1e-4])
    assert len(groups[1]["params"]) == 2  # its weight and bias

    interrupt_at_call(monkeypatch, 2 * 3 + 1)  # at the 4th batch of epoch 1
    with pytest.raises(Interrupted):
        _train(h5_x3, tmp_path / "split", *flags)
    monkeypatch.undo()
    train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "split" / "last.pth"), "--device", "cpu"]))
    resumed = load_checkpoint(tmp_path / "split" / "last.pth")
    assert resumed["ema_updates"] == steps
    for key in ("model", "trained_model"):
        for name, value in straight[key].items():
            assert torch.allclose(resumed[key][name], value, atol=1e-6), (key, name)


def test_a_run_without_ema_cannot_be_resumed_with_it(tmp_path, h5_x3):
    _train(h5_x3, tmp_path / "plain", "--epochs", "1")
    with pytest.raises(UserError, match="--ema"):
        train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "plain" / "last.pth"), "--ema", "0.9",
                                                 "--device", "cpu"]))


def _nan_loss_after(monkeypatch, n: int) -> None:
    """Make train_srcnn's loss NaN from its ``n + 1``-th batch on, as a diverging run's would be."""
    real = train_srcnn.content_loss
    calls = {"n": 0}

    def poisoned(name):
        criterion = real(name)

        def loss(pred, target):
            calls["n"] += 1
            value = criterion(pred, target)
            return value * float("nan") if calls["n"] > n else value

        return loss

    monkeypatch.setattr(train_srcnn, "content_loss", poisoned)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, h5_x3, monkeypatch):
    _nan_loss_after(monkeypatch, 9)  # epoch 1 has 7 batches: from epoch 2, batch 3
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
    real_save = sr.training.run_dir.save_checkpoint

    def save_then_ctrl_c(path, state):
        if path.name == "best.pth" and state["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real_save(path, state)

    monkeypatch.setattr(sr.training.run_dir, "save_checkpoint", save_then_ctrl_c)
    with pytest.raises(Interrupted, match=r"interrupted at epoch 1, after its checkpoint; saved .*last.pth"):
        _train(h5_x3, tmp_path / "run", "--epochs", "3")
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "run" / "last.pth")
    assert (saved["epoch"], saved["step"]) == (1, 0)
    assert load_checkpoint(tmp_path / "run" / "best.pth")["epoch"] == 1
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == ["1"]
    train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "run" / "last.pth"), "--device", "cpu"]))
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == ["1", "2", "3"]


@pytest.fixture(scope="module")
def augmented_x3(tmp_path_factory, image_folders):
    return make_h5(tmp_path_factory.mktemp("aug"), image_folders, 3, "--stride", "9", "--augment", "--rescale", "1")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, h5_x3, stop):
    EPOCHS = 3
    train, evaluation = h5_x3
    out = tmp_path / "run"
    # Batches of one patch: ~140 steps an epoch (a second or two), long enough to be interrupted inside
    # one; 3 epochs: one before the Ctrl-C, one it lands in, one after.
    cmd = [sys.executable, "train_srcnn.py", "--train", str(train), "--eval", str(evaluation), "--out", str(out),
           "--arch", "fsrcnn", "--device", "cpu", "--batch-size", "1", "--epochs", str(EPOCHS)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "last.pth").exists() and time.time() < deadline:  # wait for epoch 1 to end
        time.sleep(0.05)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    last_line = err.strip().splitlines()[-1].split("\r")[-1]
    assert "Traceback" not in err and last_line.startswith("train_srcnn.py: interrupted at epoch")
    state = load_checkpoint(out / "last.pth")
    assert state["epoch"] < EPOCHS  # interrupted inside an epoch, or during the eval that ends one
    result = train_srcnn.main(train_srcnn.parse_args(["--resume", str(out / "last.pth"), "--device", "cpu"]))
    assert load_checkpoint(out / "last.pth")["epoch"] == EPOCHS
    assert [r["epoch"] for r in read_metrics(out)] == [str(e) for e in range(1, EPOCHS + 1)]
    assert result["best_psnr"] == pytest.approx(max(float(r["psnr"]) for r in read_metrics(out)), abs=1e-4)


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
    memory, lazy = read_metrics(tmp_path / "memory")[0], read_metrics(tmp_path / "lazy")[0]
    # The same batches (only their order inside a batch differs): the same run up to rounding.
    assert float(lazy["loss"]) == pytest.approx(float(memory["loss"]), rel=1e-4)
    assert float(lazy["psnr"]) == pytest.approx(float(memory["psnr"]), abs=1e-3)


def test_nan_weights_are_never_saved_even_by_a_ctrl_c(tmp_path, h5_x3, monkeypatch):
    # The loss is only checked every 20 batches (and at an epoch's end); a Ctrl-C in between
    # must not write the NaN weights of that window over the last good last.pth.
    batches = len(PatchDataset(h5_x3[0])) // 16
    _nan_loss_after(monkeypatch, batches + 1)  # from epoch 2, batch 2
    interrupt_at_call(monkeypatch, 2 * (batches + 3) + 1)  # at batch 4 of epoch 2
    with pytest.raises(UserError, match=r"diverged: the weights became NaN or infinite by epoch 2, batch 3 .*"
                                         r"last.pth was not written, the last good checkpoint is .*last.pth"):
        _train(h5_x3, tmp_path / "run", "--arch", "fsrcnn", "--epochs", "3")
    kept = load_checkpoint(tmp_path / "run" / "last.pth")
    assert (kept["epoch"], kept["step"]) == (1, 0)
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_a_checkpoint_written_before_the_restructuring_still_resumes_in_its_precision(tmp_path, h5_x3, monkeypatch, capsys):
    # The key set and args that sr/training.py wrote until 2026-11, put together by hand: epoch 1
    # of 2 done, --amp on by default then. On a CPU without native bf16 the default would now be
    # fp32, but the run keeps the bf16 it started with.
    train, evaluation = h5_x3
    batches = len(PatchDataset(train)) // 16
    torch.manual_seed(0)
    model, kwargs = create_model("fsrcnn", 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2 * batches, eta_min=0.0)
    for _ in range(batches):
        optimizer.zero_grad()
        model(torch.rand(2, 1, 33, 33)).square().mean().backward()
        optimizer.step()
        scheduler.step()
    out = tmp_path / "old"
    args = {"arch": "fsrcnn", "loss": "mse", "scale": 3, "color": "y", "epochs": 2, "batch_size": 16, "lr": 0.001,
            "train": str(train), "eval": str(evaluation), "out": str(out), "resume": None, "init": None, "seed": 0,
            "device": "cpu", "amp": True, "amp_dtype": "bf16", "channels_last": None, "compile": False, "workers": 0,
            "load": "auto", "machine": "CPU Intel(R) Xeon(R) Processor, 2 of 2 threads, torch 2.14.1+cu130",
            "script": "train_srcnn"}
    save_checkpoint(out / "last.pth", dict(
        arch="fsrcnn", model_kwargs=kwargs, scale=3, color="y", layout="upsampled", model=model.state_dict(),
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler={}, epoch=1, step=0, partial={},
        args=args, best_psnr=20.0, scores={"psnr": 20.0, "ssim": 0.5}))
    (out / "metrics.csv").write_text("epoch,loss,psnr,ssim,lr,seconds,samples_per_s\n1,0.1,20.0000,0.50000,5.0e-04,1.0,100.0\n")
    assert set(torch.load(out / "last.pth", weights_only=True)) == {
        "format", "arch", "model_kwargs", "scale", "color", "layout", "model", "optimizer", "scheduler", "scaler", "epoch",
        "step", "partial", "args", "best_psnr", "scores"}

    monkeypatch.setattr(sr.precision, "cpu_has_native_bf16", lambda: False)
    result = train_srcnn.main(train_srcnn.parse_args(["--resume", str(out / "last.pth"), "--device", "cpu", "--epochs", "2"]))
    assert "bf16 autocast (kept from the resumed run)" in capsys.readouterr().out
    resumed = load_checkpoint(out / "last.pth")
    assert resumed["epoch"] == 2 and resumed["scheduler"]["last_epoch"] == 2 * batches
    assert (resumed["args"]["precision"], resumed["args"]["amp"]) == ("bf16", True)
    assert "precision" not in resumed  # stored once, in the settings
    assert [r["epoch"] for r in read_metrics(out)] == ["1", "2"] and result["best_psnr"] >= 20.0


def test_args_json_records_the_resolved_precision_and_portable_paths(tmp_path_factory, tmp_path, h5_x3, monkeypatch):
    # Chosen by the hardware on an AVX2 CPU: fp32. Resumed on a CPU with AMX, the run stays fp32.
    base = tmp_path_factory.getbasetemp()
    monkeypatch.chdir(base)
    monkeypatch.setattr(sr.precision, "cpu_has_native_bf16", lambda: False)
    _train(h5_x3, tmp_path / "run", "--epochs", "1", "--arch", "fsrcnn")
    saved = json.loads((tmp_path / "run" / "args.json").read_text())
    assert (saved["amp"], saved["precision"], saved["precision_chosen_by"]) == (False, "fp32", "hardware")
    assert saved["train"] == str(h5_x3[0].relative_to(base)) and saved["out"] == str((tmp_path / "run").relative_to(base))
    assert load_checkpoint(tmp_path / "run" / "last.pth")["args"]["precision"] == "fp32"
    monkeypatch.setattr(sr.precision, "cpu_has_native_bf16", lambda: True)
    assert choose_precision(torch.device("cpu"), None).name == "bf16"
    train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "run" / "last.pth"), "--device", "cpu"]))
    resumed = json.loads((tmp_path / "run" / "args.json").read_text())
    assert (resumed["amp"], resumed["precision"], resumed["precision_chosen_by"]) == (False, "fp32", "resumed")
    with pytest.raises(UserError, match="--amp differs from the resumed run's False"):
        train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "run" / "last.pth"), "--amp"]))


def test_batches_held_on_the_device_come_in_the_loaders_order(h5_x3):
    dataset = PatchDataset(h5_x3[0])
    ctx = distributed.Context(torch.device("cpu"))
    loader = make_batches(dataset, 16, ctx, seed=3, workers=0, on_device=False)
    resident = make_batches(dataset, 16, ctx, seed=3, workers=0, on_device=True)
    assert isinstance(loader, LoaderBatches) and isinstance(resident, DeviceBatches)
    for epoch, skip in ((1, 0), (2, 0), (2, 5)):
        loader.order.set_epoch(epoch, skip)
        resident.order.set_epoch(epoch, skip)
        a, b = list(loader), list(resident)
        assert len(a) == len(b) == loader.per_epoch - skip
        for (lr_a, hr_a), (lr_b, hr_b) in zip(a, b):
            assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)


def test_runs_killed_at_random_moments_end_as_one_uninterrupted_run(tmp_path, h5_x3):
    # SIGKILL leaves no chance to save: each restart resumes from the last epoch's checkpoint
    # (or starts afresh), and batches come in (seed, epoch) order, so the end is bit-exact.
    train, evaluation = h5_x3
    flags = ["--train", str(train), "--eval", str(evaluation), "--arch", "fsrcnn", "--device", "cpu", "--batch-size", "16",
             "--epochs", "4", "--no-amp"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the OMP_NUM_THREADS=1 processes below: the same sums in the same order
    try:
        start = time.perf_counter()
        train_srcnn.main(train_srcnn.parse_args([*flags, "--out", str(tmp_path / "straight")]))
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "killed"
    rng = random.Random(11)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    while True:
        resume = ["--resume", str(out / "last.pth")] if (out / "last.pth").exists() else ["--out", str(out)]
        begun = (out / "args.json").stat().st_mtime if (out / "args.json").exists() else 0
        proc = subprocess.Popen([sys.executable, "train_srcnn.py", *flags, *resume], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills == 4:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            break
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:  # until this process starts training
            if (out / "args.json").exists() and (out / "args.json").stat().st_mtime != begun:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.4) * seconds)  # at most about one epoch saved per attempt
        finished = proc.poll() is not None
        proc.kill()
        _, err = proc.communicate()
        if finished:  # it ran to the end before the kill
            assert proc.returncode == 0, err[-3000:]
            break
        kills += 1
    assert kills >= 3
    a, b = load_checkpoint(tmp_path / "straight" / "last.pth"), load_checkpoint(out / "last.pth")
    assert b["epoch"] == 4
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key
    assert [r["loss"] for r in read_metrics(out)] == [r["loss"] for r in read_metrics(tmp_path / "straight")]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["kill-group", "ctrl-c-group"])
def test_a_stop_sent_to_the_whole_process_group_saves_with_dataloader_workers(tmp_path, augmented_x3, stop):
    # Issue 21, row 6: `kill -TERM -- -PGID` (or Ctrl-C in a terminal, which signals the whole
    # foreground group) reached the DataLoader workers too; they died first, and the run ended
    # in "RuntimeError: DataLoader worker ... killed by signal", exit 1, with no last.pth.
    train, evaluation = augmented_x3
    out = tmp_path / "run"
    cmd = [sys.executable, "train_srcnn.py", "--train", str(train), "--eval", str(evaluation), "--out", str(out),
           "--arch", "fsrcnn", "--device", "cpu", "--batch-size", "4", "--epochs", "3", "--workers", "2", "--load", "lazy"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        proc.stdout.readline()  # the start line: the model, the data and the loader are set up
        time.sleep(3)  # the workers are up and batches flow
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        os.killpg(proc.pid, stop)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "killed by signal" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].split("\r")[-1].startswith("train_srcnn.py: interrupted at epoch")
    assert load_checkpoint(out / "last.pth")["epoch"] < 3


def _h5(path, attrs: dict, **arrays) -> str:
    """A small HDF5 file with ``attrs`` and datasets (names with '/' make groups), true or not to its attrs."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        for name, array in arrays.items():
            f.create_dataset(name.replace("__", "/"), data=array)
    return str(path)


def _lying_files(folder, lie: str) -> tuple[str, str]:
    """lr-hr Y files (8 patches of 11 px LR, one 16 px LR eval image) whose attrs say what the run
    wants, and whose arrays hold what they say but for one ``lie``."""
    rng = np.random.default_rng(0)
    attrs = dict(scale=4 if "x4" in lie else 3, layout="lr-hr", color="rgb" if "rgb" in lie else "y")
    train_scale = 3 if lie == "train x4 on x3 data" else attrs["scale"]
    eval_scale = 3 if lie == "eval x4 on x3 data" else attrs["scale"]
    train_channels = 1 if lie == "train rgb on y data" else (3 if attrs["color"] == "rgb" else 1)
    eval_channels = 3 if attrs["color"] == "rgb" else 1

    def pixels(*shape):
        return rng.integers(0, 256, shape, np.uint8)

    lr, hr = pixels(8, train_channels, 11, 11), pixels(8 if "counts" not in lie else 6, train_channels, 11 * train_scale, 11 * train_scale)
    inputs = pixels(eval_channels, 16, 16) if "nan" not in lie else np.full((eval_channels, 16, 16), np.nan, np.float32)
    return (_h5(folder / "train.h5", dict(attrs, kind="train"), lr=lr, hr=hr),
            _h5(folder / "eval.h5", dict(attrs, kind="eval"), images__a__input=inputs,
                images__a__hr=pixels(16 * eval_scale, 16 * eval_scale, 3)))


@pytest.mark.parametrize("lie, wanted, message", [
    ("train x4 on x3 data", (4, "lr-hr", "y"), r"train.h5: its attrs say x4 lr-hr y, but its LR patches are 11x11 px and its HR "
                                                r"patches 33x33 px \(x3\)"),
    ("train rgb on y data", (3, "lr-hr", "rgb"), r"train.h5: its attrs say x3 lr-hr rgb \(3 channels\), but its patches have 1"),
    ("lr and hr counts differ", (3, "lr-hr", "y"), r"train.h5: holds 8 LR patches but 6 HR patches"),
    ("eval x4 on x3 data", (4, "lr-hr", "y"), r"eval.h5: its attrs say x4 lr-hr y, but image 'a' is 16x16 px in and 48x48 px out"),
    ("nan in the eval input", (3, "lr-hr", "y"), r"eval.h5: image 'a' input holds NaN or infinite values"),
])
def test_a_patch_or_eval_file_that_lies_about_its_data_is_refused_where_it_is_read(tmp_path, lie, wanted, message):
    # Issue 32, rows 6 and 8: these ended in a RuntimeError or IndexError traceback, or "eval psnr: nan".
    from sr.training.loader import TrainingData

    train, evaluation = _lying_files(tmp_path, lie)
    with pytest.raises(UserError, match=message) as info:
        TrainingData.open(train, evaluation, *wanted)
    assert "\n" not in str(info.value)


def test_training_on_a_lying_file_exits_2_in_one_line(tmp_path, capsys):
    train, evaluation = _lying_files(tmp_path, "lr and hr counts differ")
    argv = ["--arch", "fsrcnn-paper", "--train", train, "--eval", evaluation, "--out", str(tmp_path / "run"), "--device", "cpu",
            "--batch-size", "4", "--epochs", "1"]
    assert run(train_srcnn.main, lambda: train_srcnn.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 8 LR patches but 6 HR patches" in err, err
    assert not (tmp_path / "run").exists()


def test_a_resume_with_another_runs_optimizer_state_is_refused_in_one_line(tmp_path, h5_x3):
    # Issue 32, row 7: Adam state for an RGB SRCNN (same number of tensors, other shapes) loaded into a Y
    # SRCNN's optimizer without complaint and failed inside the first step with a RuntimeError traceback.
    _train(h5_x3, tmp_path / "run", "--epochs", "1")
    state = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    other, _ = create_model("srcnn", 3, "rgb")
    adam = torch.optim.Adam(other.parameters())
    other(torch.rand(1, 3, 12, 12)).mean().backward()
    adam.step()
    state["optimizer"] = adam.state_dict()
    save_checkpoint(tmp_path / "doctored.pth", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(UserError, match=r"--resume: the checkpoint's optimizer holds state of shape \(64, 3, 9, 9\) for "
                                        r"SRCNN's parameter 'body.0.weight' of shape \(64, 1, 9, 9\)") as info:
        train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "doctored.pth")]))
    assert "\n" not in str(info.value)
    state["optimizer"]["param_groups"][0]["params"].pop()
    state["optimizer"]["state"].pop(5, None)
    save_checkpoint(tmp_path / "fewer.pth", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(UserError, match=r"--resume: the checkpoint's optimizer has 5 parameters in its group 1; SRCNN's has 6"):
        train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "fewer.pth")]))


def test_a_worker_handshake_cut_by_a_stop_prints_nothing_and_other_thread_errors_still_print(capsys):
    """A stop that cuts a worker's fd handshake (multiprocessing's resource_sharer thread, which
    reports through sys.excepthook) once put a traceback beside the one-line stop message; only
    that case is silenced."""
    from sr.training.loader import _quiet_handshakes_cut_by_a_stop as hook

    scope: dict = {}
    exec(compile("def serve():\n    raise ConnectionResetError(104, 'Connection reset by peer')\n",  # noqa: S102
                 "/usr/lib/python3/multiprocessing/resource_sharer.py", "exec"), scope)
    for raise_it, printed in ((scope["serve"], False), (lambda: 1 / 0, True)):
        try:
            raise_it()
        except Exception as exc:  # noqa: BLE001
            hook(type(exc), exc, exc.__traceback__)
        assert ("Traceback" in capsys.readouterr().err) == printed
