"""DistributedDataParallel on 2 CPU processes (gloo), started by torchrun as a user would."""

import subprocess
import sys

import torch

import train_srcnn
from sr.checkpoint import load_checkpoint
from tests.conftest import ROOT


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, h5_x3):
    train, evaluation = h5_x3
    common = ["--train", str(train), "--eval", str(evaluation), "--arch", "fsrcnn", "--batch-size", "16",
              "--epochs", "2", "--device", "cpu", "--no-amp"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), *common, "--out", str(tmp_path / "ddp")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("eval psnr:") == 2  # only rank 0 evaluates and prints
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    run_files = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert run_files == ["args.json", "best.pth", "last.pth", "metrics.csv"]
    saved = load_checkpoint(tmp_path / "ddp" / "last.pth")
    assert all(not k.startswith("module.") for k in saved["model"])  # the bare module, not the DDP wrapper

    # Each rank takes half of every global batch of 16: the run matches a single process.
    single = train_srcnn.main(train_srcnn.parse_args([*common, "--out", str(tmp_path / "single")]))["model"].state_dict()
    for key in single:
        assert torch.allclose(single[key], rank0[key], atol=1e-5), key
