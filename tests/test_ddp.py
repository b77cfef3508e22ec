"""DistributedDataParallel on 2 CPU processes (gloo), started by torchrun as a user would."""

import os
import subprocess
import sys

import pytest
import torch

import train_srcnn
from sr.checkpoint import load_checkpoint
from tests.conftest import ROOT, make_h5, read_metrics


def _torchrun(script, dump, argv):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "ddp_worker.py"), script, str(dump), *argv]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    return result, rank0


def _one_checkpoint_of_the_bare_module(out):
    assert sorted(p.name for p in out.iterdir()) == ["args.json", "best.pth", "last.pth", "metrics.csv"]
    saved = load_checkpoint(out / "last.pth")
    assert all(not k.startswith("module.") for k in saved["model"])
    return saved


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, h5_x3):
    train, evaluation = h5_x3
    common = ["--train", str(train), "--eval", str(evaluation), "--arch", "fsrcnn", "--batch-size", "16",
              "--epochs", "2", "--device", "cpu", "--no-amp"]
    result, rank0 = _torchrun("train_srcnn", tmp_path, [*common, "--out", str(tmp_path / "ddp")])
    assert result.stdout.count("eval psnr:") == 2  # only rank 0 evaluates and prints
    _one_checkpoint_of_the_bare_module(tmp_path / "ddp")
    # Each rank takes half of every global batch of 16: the run matches a single process.
    single = train_srcnn.main(train_srcnn.parse_args([*common, "--out", str(tmp_path / "single")]))["model"].state_dict()
    for key in single:
        assert torch.allclose(single[key], rank0[f"g.{key}"], atol=1e-5), key
    # The logged loss is the whole batch's, averaged over the processes, not rank 0's half.
    for ddp, one in zip(read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")):
        assert float(ddp["loss"]) == pytest.approx(float(one["loss"]), rel=1e-4)


def test_the_gan_phase_keeps_both_networks_in_step(tmp_path, image_folders):
    train, evaluation = make_h5(tmp_path, image_folders, 2, "--layout", "lr-hr", "--color", "rgb",
                                "--patch-size", "32", "--stride", "24")
    data = ["--train", str(train), "--eval", str(evaluation), "--batch-size", "8", "--epochs", "1", "--device", "cpu"]
    _torchrun("train_srgan", tmp_path, [*data, "--arch", "srresnet-noin", "--scale", "2", "--out", str(tmp_path / "pre")])
    _, weights = _torchrun("train_srgan", tmp_path, [*data, "--phase", "gan", "--generator", str(tmp_path / "pre" / "last.pth"),
                                                     "--out", str(tmp_path / "gan")])
    # The discriminators' parameters matched too. (Their BatchNorm running averages are not
    # compared: on the CPU each rank normalises its own half-batch, and D never runs in eval mode.)
    assert any(k.startswith("d.") for k in weights)
    saved = _one_checkpoint_of_the_bare_module(tmp_path / "gan")
    assert all(not k.startswith("module.") for k in saved["discriminator"])
