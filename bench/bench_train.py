"""Speed figures: training samples/s per model, prepare_h5.py time, and one whole SRCNN
epoch of train_srcnn.py beside a plain trainer (bench/plain_trainer.py), as a ratio.

    SR_DATA=../shared/datasets python bench/bench_train.py            # everything (~10 min on 2 cores)
    python bench/bench_train.py --only throughput --steps 30

Not a test: timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sr.models import MODELS, create_model  # noqa: E402
from sr.training import AmpSettings  # noqa: E402


def throughput(name: str, amp: bool, steps: int, batch: int = 32, scale: int = 3) -> float:
    """Training samples/s of one model on random patches (optimizer step included)."""
    torch.manual_seed(0)
    if MODELS[name].layout == "lr-hr" and MODELS[name].family == "srgan":
        scale = 4
    model, kwargs = create_model(name, scale)
    c = kwargs["channels"]
    settings = AmpSettings(argparse.Namespace(amp=amp, amp_dtype="bf16", channels_last=None), torch.device("cpu"))
    model.to(memory_format=torch.channels_last)
    hr_side = 33 if MODELS[name].layout == "upsampled" else (11 * scale if c == 1 else 25 * scale)
    lr_side = hr_side if MODELS[name].layout == "upsampled" else hr_side // scale
    x = torch.rand(batch, c, lr_side, lr_side).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, c, hr_side, hr_side).contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    warmup = 3
    for i in range(steps + warmup):
        if i == warmup:
            start = time.perf_counter()
        with settings.autocast():
            out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def run(cmd: list[str], env=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def float32_copy(src: Path, dst: Path) -> None:
    """The plain trainer's input: the same patches as float32 in [0, 1]."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for key in ("lr", "hr"):
            g.create_dataset(key, data=f[key][...].astype(np.float32) / 255.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("throughput", "prepare", "epoch"), help="run one part")
    p.add_argument("--steps", type=int, default=40, help="timed training steps per model and precision")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "results", help="scratch folder")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")

    if args.only in (None, "throughput"):
        print("\ntraining samples/s at batch 32 (CPU, channels-last; x3, SRResNet x4):")
        print(f"{'model':<17}{'fp32':>9}{'bf16 amp':>10}{'ratio':>8}")
        for name in MODELS:
            fp32, bf16 = throughput(name, False, args.steps), throughput(name, True, args.steps)
            print(f"{name:<17}{fp32:>9.0f}{bf16:>10.0f}{bf16 / fp32:>7.2f}x", flush=True)

    h5 = args.work / "T91_x3_upsampled_y.h5"
    ev = args.work / "Set5_x3_upsampled_y.h5"
    if args.only in (None, "prepare", "epoch"):
        seconds = run([py, "prepare_h5.py", "--scale", "3", "--output", str(h5), "--eval-output", str(ev)])
        print(f"\nprepare_h5.py --scale 3 (T91 + Set5): {seconds:.1f} s wall, process start included")

    if args.only in (None, "epoch"):
        f32 = args.work / "T91_x3_float32.h5"
        float32_copy(h5, f32)
        out = args.work / "epoch_run"
        for old in ("last.pth", "best.pth"):
            (out / old).unlink(missing_ok=True)
        times = {}
        for label, extra in (("train_srcnn.py (defaults: bf16)", []), ("train_srcnn.py --no-amp (fp32)", ["--no-amp"])):
            for old in ("last.pth", "best.pth"):
                (out / old).unlink(missing_ok=True)
            times[label] = run([py, "train_srcnn.py", "--arch", "srcnn", "--epochs", "1", "--train", str(h5),
                                "--eval", str(ev), "--out", str(out), *extra])
        plain = run([py, "bench/plain_trainer.py", "--train", str(f32), "--eval", str(ev), "--epochs", "1"])
        print("\none SRCNN x3 epoch, whole process (start, data, training, eval, checkpoint), seconds and ratio to plain:")
        for label, seconds in times.items():
            print(f"  {label:<40}{seconds:6.1f} s  {seconds / plain:5.2f}x")
        print(f"  {'plain trainer (float32 h5, 2 workers)':<40}{plain:6.1f} s  1.00x")


if __name__ == "__main__":
    main()
