"""Speed of sr/realistic.py's degrade_batch: samples/s for batches of 64 HR patches of 96 px
at x4 with the default settings, on one CPU thread, beside the loader workers a GPU step needs.

    python -m bench.bench_degrade                      # ~5 s
    python -m bench.bench_degrade --gpu-rate 7500      # samples/s the training step consumes

Not a test: timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from sr.realistic import DEFAULTS, degrade_batch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--patch", type=int, default=96, help="HR side in pixels")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--gpu-rate", type=float, default=7500.0, help="samples/s the GPU training step takes")
    args = p.parse_args()

    torch.set_num_threads(1)  # what one DataLoader worker gets
    # Photo-like content matters little here: every step costs the same whatever the pixels.
    g = torch.Generator().manual_seed(0)
    hr = (torch.rand(args.batch, 3, args.patch, args.patch, generator=g) * 255).to(torch.uint8)
    for _ in range(3):  # warm-up: oneDNN primitives, allocator
        degrade_batch(hr, args.scale, DEFAULTS, g)
    times = []
    for _ in range(args.batches):
        start = time.perf_counter()
        degrade_batch(hr, args.scale, DEFAULTS, g)
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    rate = args.batch / median
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, 1 thread")
    print(f"degrade_batch x{args.scale}, {args.batch} x {args.patch}px HR, defaults: "
          f"median {median * 1e3:.1f} ms/batch (fastest {times[0] * 1e3:.1f}), {rate:,.0f} samples/s")
    print(f"to feed {args.gpu_rate:,.0f} samples/s: {math.ceil(args.gpu_rate / rate)} loader workers at 1 thread each")


if __name__ == "__main__":
    main()
