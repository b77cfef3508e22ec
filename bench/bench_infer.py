"""Inference speed on the CPU: each model enlarges an input to about one megapixel, through sr.upscaler and sr.enlarge.

    python -m bench.bench_infer                          # fsrcnn_x3 and srresnet_x4, 2 threads, median of 3
    python -m bench.bench_infer --models fsrcnn_x2 srcnn_x3 --runs 5 --no-onnx

Model time is ``sr.protocol.predict`` on the model's input (334x334 at x3, 250x250 at x4; the output
is 1002x1002 or 1000x1000): the input to the device, the forward pass under inference_mode,
the output back as float32. Not counted: ``import torch``, loading, one warm-up run (oneDNN
builds its kernels then). Columns: fp32 and bf16 autocast as Upscaler loads them (the one
``sr.precision`` picks by default on this machine is marked), fp32 with the checkpoint's own
layers (before ``sr.models.inference_forms.for_inference``), onnxruntime fp32 on the same number of
threads, and the whole enlargement (``sr.enlarge.enlarge`` to the 8-bit image) at the default
precision (colour handling included: a Y model's chroma is MATLAB bicubic in float64). Medians of alternating runs,
so a load change on a shared machine hits every column alike; still, timings on a shared
machine are noisy. Not a test.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.data.degradation import model_input
from sr.enlarge import enlarge
from sr.photo import Photo
from sr.upscaler import Upscaler
from sr.protocol import predict
from sr.weights import resolve_weights
from sr.precision import choose_precision, cpu_has_native_bf16

CPU = torch.device("cpu")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine_line(threads: int) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu_name()}, {cores} cores available, {threads} threads; torch {torch.__version__} "
            f"({torch.backends.cpu.get_cpu_capability()}), native bf16: {'yes' if cpu_has_native_bf16() else 'no'}")


def medians(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median seconds of each function; one warm-up each, then the runs alternate."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench(name: str, runs: int, onnx_dir: Path | None) -> dict[str, object]:
    path = resolve_weights(name)
    state = load_checkpoint(path)
    scale = int(state["scale"])
    side = math.ceil(1000 / scale)  # LR side: the output is about 1000x1000
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    planes = model_input(lr, scale, state["layout"], state["color"])  # what the network is fed

    fp32, bf16 = Upscaler.load(path, CPU, amp=False), Upscaler.load(path, CPU, amp=True)
    plain = Upscaler.load(path, CPU, amp=False)  # the checkpoint's own layers, as the old eval.py ran them
    plain.net = model_from_checkpoint(state, path).to(memory_format=torch.channels_last)
    default = choose_precision(CPU, None)
    chosen = bf16 if default.enabled else fp32
    def forward(up: Upscaler):
        return lambda: predict(up.net, planes, up.input_scale, up.device, up.precision)

    columns = {"fp32": forward(fp32), "bf16": forward(bf16), "fp32, checkpoint layers": forward(plain)}
    if onnx_dir is not None:
        from sr.export import export_onnx

        export_onnx(path, onnx_dir / f"{name}.onnx")
        onnx = Upscaler.load(onnx_dir / f"{name}.onnx", CPU)
        columns["onnxruntime"] = forward(onnx)
    columns["enlarge, default"] = lambda: enlarge(chosen, Photo(rgb=lr))
    seconds = dict(zip(columns, medians(list(columns.values()), runs)))
    shape = planes.shape[-2:]
    return {"name": name, "input": f"{shape[1]}x{shape[0]}", "default": default.name, **seconds}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["fsrcnn_x3", "srresnet_x4"], help="shipped names or checkpoint files")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-onnx", action="store_true", help="leave out onnxruntime (or when it is not installed)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads))
    print(f"median of {args.runs} alternating runs after one warm-up; * = the precision sr.precision picks here\n")
    with tempfile.TemporaryDirectory() as folder:
        rows = [bench(name, args.runs, None if args.no_onnx else Path(folder)) for name in args.models]
    keys = [k for k in rows[0] if k not in ("name", "input", "default")]
    print("| model | model input | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{row[k]:.3f} s" + (" *" if k == row["default"] else "") for k in keys]
        print(f"| {row['name']} | {row['input']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
