"""Speed figures: the machine and the precision it gets by default; training samples/s per
model in fp32 and bf16; how near the bare SRCNN step comes to the CPU's fp32 peak; and one
whole SRCNN epoch of train_srcnn.py beside its bare steps and a plain trainer
(bench/plain_trainer.py).

    SR_DATA=../shared/datasets python -m bench.bench_train            # everything (~10 min on 2 cores)
    python -m bench.bench_train --only throughput --steps 30
    SR_DATA=../shared/datasets python -m bench.bench_train --steps 2 --max-images 4   # a quick check that it runs

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
from torch import nn

from sr.atomic import atomic_path
from sr.data.h5 import default_patch
from sr.models import MODELS, create_model
from sr.precision import choose_precision, cpu_has_native_bf16

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def cpuinfo(key: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith(key))
    except (OSError, StopIteration):
        return None


def clock_ghz() -> tuple[float, str]:
    """The core clock: lscpu's max MHz where it says, else /proc/cpuinfo's current "cpu MHz"."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        mhz = next(float(line.split(":")[1]) for line in out.splitlines() if line.startswith("CPU max MHz"))
        return mhz / 1000, "lscpu max MHz"
    except (OSError, subprocess.CalledProcessError, StopIteration, ValueError):
        mhz = cpuinfo("cpu MHz")
        return (float(mhz) / 1000, "/proc/cpuinfo cpu MHz") if mhz else (0.0, "unknown")


def fp32_peak() -> tuple[float, str]:
    """cores x GHz x fp32 FMA lanes x 2 flops, in GFLOP/s: 2 FMA units of 16 lanes (AVX-512) or 8 (AVX2)."""
    cores = len(os.sched_getaffinity(0))
    ghz, source = clock_ghz()
    capability = torch.backends.cpu.get_cpu_capability()
    lanes = 2 * (16 if capability.startswith("AVX512") else 8)
    return cores * ghz * lanes * 2, f"{cores} cores x {ghz:.2f} GHz ({source}) x {lanes} fp32 FMA lanes x 2"


def machine_line() -> str:
    default = choose_precision(CPU, None)
    return (f"CPU {cpuinfo('model name') or '?'}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), capability {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; default precision: {default.describe()}")


def model_and_batch(name: str, batch: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A model at its default data (x3; SRResNet x4) and a random batch of default-size patches."""
    spec = MODELS[name]
    scale = 4 if name.startswith("srresnet") else 3
    model, kwargs = create_model(name, scale)
    patch, _ = default_patch(scale, spec.layout, spec.color)
    lr_side = patch // spec.input_scale(scale)
    c = kwargs["channels"]
    return model, torch.rand(batch, c, lr_side, lr_side), torch.rand(batch, c, patch, patch)


def throughput(name: str, amp: bool, steps: int, batch: int = 32, channels_last: bool = True) -> float:
    """Training samples/s of one model on random patches (optimizer step included)."""
    torch.manual_seed(0)
    model, x, y = model_and_batch(name, batch)
    precision = choose_precision(CPU, amp, channels_last=channels_last)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
        x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    warmup = 3
    for i in range(steps + warmup):
        if i == warmup:
            start = time.perf_counter()
        with precision.autocast():
            out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def forward_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``x`` through the convolutions."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total


def run(cmd: list[str], env=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def float32_copy(src: Path, dst: Path) -> None:
    """The plain trainer's input: the same patches as float32 in [0, 1]."""
    with atomic_path(dst) as tmp:
        with h5py.File(src, "r") as f, h5py.File(tmp, "w") as g:
            for key in ("lr", "hr"):
                g.create_dataset(key, data=f[key][...].astype(np.float32) / 255.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("throughput", "prepare", "epoch"), help="run one part")
    p.add_argument("--steps", type=int, default=40, help="timed training steps per model and precision")
    p.add_argument("--max-images", type=int, default=0, help="T91 images for the epoch part (0: all; a few for a quick check)")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "results", help="scratch folder")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    print(machine_line(), flush=True)
    default_amp = choose_precision(CPU, None).enabled

    if args.only in (None, "throughput"):
        print("\ntraining samples/s at batch 32 (CPU, channels-last; x3, SRResNet x4; * = the default here):")
        print(f"{'model':<17}{'fp32':>10}{'bf16 amp':>11}{'ratio':>8}")
        for name in MODELS:
            fp32, bf16 = throughput(name, False, args.steps), throughput(name, True, args.steps)
            marks = ("*", " ") if not default_amp else (" ", "*")
            print(f"{name:<17}{fp32:>9.0f}{marks[0]}{bf16:>10.0f}{marks[1]}{bf16 / fp32:>7.2f}x", flush=True)

    # The bare fp32 SRCNN x3 step against the machine's fp32 peak.
    model, x, _ = model_and_batch("srcnn", 1)
    flops = 3 * 2 * forward_macs(model, x)  # forward + backward (twice the forward) = 3x; 2 flops per MAC
    bare_fp32 = throughput("srcnn", False, max(args.steps, 5))
    peak, how = fp32_peak()
    achieved = bare_fp32 * flops / 1e9
    print(f"\nbare SRCNN x3 fp32 training step: {flops / 1e6:.1f} MFLOP per 33x33 sample, {bare_fp32:.0f} samples/s = "
          f"{achieved:.1f} GFLOP/s; fp32 peak {peak:.0f} GFLOP/s ({how}): {achieved / peak:.1%} of it")

    h5 = args.work / "T91_x3_upsampled_y.h5"
    ev = args.work / "Set5_x3_upsampled_y.h5"
    if args.only in (None, "prepare", "epoch"):
        seconds = run([py, "prepare_h5.py", "--scale", "3", "--output", str(h5), "--eval-output", str(ev),
                       "--max-images", str(args.max_images)])
        print(f"\nprepare_h5.py --scale 3 (T91 + Set5): {seconds:.1f} s wall, process start included")

    if args.only in (None, "epoch"):
        with h5py.File(h5, "r") as f:
            samples = (f["lr"].shape[0] // 32) * 32
        f32 = args.work / "T91_x3_float32.h5"
        float32_copy(h5, f32)
        out = args.work / "epoch_run"
        label = f"train_srcnn.py (default: {choose_precision(CPU, None).name})"
        for old in ("last.pth", "best.pth"):
            (out / old).unlink(missing_ok=True)
        whole = run([py, "train_srcnn.py", "--arch", "srcnn", "--epochs", "1", "--train", str(h5), "--eval", str(ev),
                     "--out", str(out)])
        bare = samples / throughput("srcnn", default_amp, max(args.steps, 5))  # the epoch's steps alone, same precision
        plain = run([py, "bench/plain_trainer.py", "--train", str(f32), "--eval", str(ev), "--epochs", "1"])
        overhead, allowed = whole - bare, 5 + 0.05 * bare
        print(f"\none SRCNN x3 epoch ({samples} samples), whole process (start, data, training, eval, checkpoint):")
        print(f"  {label:<40}{whole:6.1f} s  {whole / plain:5.2f}x the plain trainer")
        print(f"  {'its steps alone (bare, same precision)':<40}{bare:6.1f} s")
        print(f"  {'non-step overhead':<40}{overhead:6.1f} s  (target <= 5 s + 5% = {allowed:.1f} s: "
              f"{'met' if overhead <= allowed else 'missed'})")
        print(f"  {'plain trainer (float32 h5, 2 workers)':<40}{plain:6.1f} s  1.00x")


if __name__ == "__main__":
    main()
