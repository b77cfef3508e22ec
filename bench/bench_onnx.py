"""CPU speed of a shipped model in PyTorch (fp32) and in onnxruntime, side by side.

    python -m bench.bench_onnx                      # fsrcnn_x3 and srresnet_x4, 2 threads, median of 3
    python -m bench.bench_onnx --models fsrcnn_x2 --threads 1 --runs 5

Each model enlarges an input whose output is about one megapixel (334x334 at x3, 250x250
at x4). PyTorch runs as eval.py runs it on the CPU (fp32, channels_last, no_grad); both
use the same number of threads. Not a test: timings depend on the machine and on what
else runs on it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.export import export_onnx
from sr.models import COLORS
from sr.onnx_runtime import OnnxModel, require

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def median_seconds(fns, runs: int) -> list[float]:
    """Median time of each function; the runs alternate, so a load change on a shared machine hits all alike."""
    for fn in fns:
        fn()  # warm-up: oneDNN primitive creation, onnxruntime's first-run allocations
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench(name: str, threads: int, runs: int, folder: Path) -> tuple[str, float, float]:
    path = ROOT / "weights" / f"{name}.pth"
    state = load_checkpoint(path)
    net = model_from_checkpoint(state, path).float().to(memory_format=torch.channels_last)
    export_onnx(path, folder / f"{name}.onnx")
    onnx_model = OnnxModel(folder / f"{name}.onnx", threads=threads)
    scale = state["scale"]
    side = math.ceil(1000 / scale)  # the output is about 1000x1000 (1002 at x3) for either layout
    if state["layout"] == "upsampled":
        side *= scale
    x = torch.rand(1, COLORS[state["color"]], side, side)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        t_torch, t_onnx = median_seconds([lambda: net(x_cl), lambda: onnx_model(x)], runs)
    return f"{side}x{side}", t_torch, t_onnx


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["fsrcnn_x3", "srresnet_x4"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    ort = require("onnxruntime")
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()} (torch sees {torch.backends.cpu.get_cpu_capability()}), {args.threads} threads, "
          f"median of {args.runs} alternating runs after one warm-up")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}\n")
    print("| model | input -> ~1 MP output | PyTorch fp32 | onnxruntime | PyTorch / onnxruntime |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            size, t_torch, t_onnx = bench(name, args.threads, args.runs, Path(folder))
            print(f"| {name} | {size} | {t_torch:.3f} s | {t_onnx:.3f} s | {t_torch / t_onnx:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
