"""Speed of sr/data/realistic.py on one CPU thread, what one DataLoader worker gets: degrade_batch
alone, and DegradedPatches[indices] (a batch read from an in-memory patch file, degraded, as
training gets it), for batches of 64 HR patches of 100 px at x4 with the default settings.

    python -m bench.bench_degrade                      # ~10 s; patches of 8 BSDS200 photos
    python -m bench.bench_degrade --train data/h5/BSDS200_x4_lr-hr_rgb.h5 --gpu-rate 7500

The patches come from --train (prepare_h5.py --scale 4 --layout lr-hr --color rgb), else
from the first --max-images photos of --images, else, with no photos found, from random
pixels. Not a test: timings depend on the machine and on what else runs on it; the CPU-time
column is the one a busy machine inflates least.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sr.data.h5 import PatchDataset, PatchWriter
from sr.distributed import cpu_name
from sr.data.sets import data_root, resolve_images
from sr.data.degradation import downscale, mod_crop, to_planes
from sr.errors import UserError
from sr.data.images import load_rgb
from sr.data.patches import patch_pairs
from sr.data.degraded_patches import DegradedPatches
from sr.data.degradation_settings import DEFAULTS
from sr.data.realistic import degrade_batch


def write_patches(path: Path, args) -> str:
    """A small lr-hr RGB patch file like prepare_h5.py's; returns where its pixels came from."""
    side = args.patch
    attrs = dict(kind="train", scale=args.scale, layout="lr-hr", color="rgb", patch_size=side, stride=side)
    writer = PatchWriter(path, (3, side // args.scale, side // args.scale), (3, side, side), attrs)
    try:
        _, files = resolve_images(args.images, data_root(args.data_root))
        source = f"{args.images}, {min(len(files), args.max_images)} photos"
    except UserError:
        files, source = [], "random pixels (no photos found)"
    for file in files[: args.max_images]:
        hr = mod_crop(load_rgb(file), args.scale)
        writer.append(*patch_pairs(to_planes(downscale(hr, args.scale), "rgb"), to_planes(hr, "rgb"), args.scale,
                                   "lr-hr", side, side // 2 // args.scale * args.scale))
    if not files:
        g = np.random.default_rng(0)
        hr = g.integers(0, 256, size=(4 * args.batch, 3, side, side), dtype=np.uint8)
        lr = np.stack([to_planes(downscale(h.transpose(1, 2, 0), args.scale), "rgb") for h in hr])
        writer.append(lr, hr)
    writer.commit()
    return source


def median_ms(fn, batches: list[list[int]]) -> tuple[float, float]:
    """Median wall and CPU milliseconds per call; CPU time is what a busy machine inflates least."""
    for indices in batches[:3]:  # warm-up: oneDNN primitives, allocator
        fn(indices)
    wall, cpu = [], []
    for indices in batches:
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(indices)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return sorted(wall)[len(wall) // 2] * 1e3, sorted(cpu)[len(cpu) // 2] * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=Path, help="an lr-hr RGB patch file at --scale (default: made from --images)")
    p.add_argument("--images", default="BSDS200", help="set name under the data root, or a folder (default: BSDS200)")
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"),
                   help="(default: ../shared/datasets beside the repository)")
    p.add_argument("--max-images", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--patch", type=int, default=100, help="HR side in pixels")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--gpu-rate", type=float, default=7500.0, help="samples/s the GPU training step takes")
    args = p.parse_args()

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.train:
            path, source = args.train, str(args.train)
        else:
            path = Path(tmp) / "patches.h5"
            source = write_patches(path, args)
        base = PatchDataset(path, "memory")
        data = DegradedPatches(base, args.scale, DEFAULTS, seed=0)
        data_y = DegradedPatches(base, args.scale, DEFAULTS, seed=0, color="y")
        order = torch.randperm(len(base), generator=torch.Generator().manual_seed(0)).tolist()
        batches = [order[i * args.batch : (i + 1) * args.batch] for i in range(len(base) // args.batch)]
        batches = (batches * math.ceil(args.batches / len(batches)))[: args.batches]  # training-like: other batches each time

        fixed_hr = base[batches[0]][1]
        g = torch.Generator().manual_seed(0)
        rows = [
            ("degrade_batch (clean share by imresize)",
             median_ms(lambda _: degrade_batch(fixed_hr, args.scale, DEFAULTS, g), batches)),
            ("DegradedPatches[indices], rgb", median_ms(lambda i: data[i], batches)),
            ("DegradedPatches[indices], y", median_ms(lambda i: data_y[i], batches)),
            ("PatchDataset[indices] (clean, for scale)", median_ms(lambda i: base[i], batches)),
        ]
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} thread; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"batches of {args.batch} x {args.patch} px HR at x{args.scale}, default settings, patches from {source}; "
          f"medians of {args.batches}, wall / CPU time:")
    for name, (wall, cpu) in rows:
        print(f"  {name:42s} {wall:6.1f} / {cpu:6.1f} ms/batch "
              f"{args.batch / wall * 1e3:8,.0f} / {args.batch / cpu * 1e3:8,.0f} samples/s")
    rate = args.batch / rows[1][1][1] * 1e3
    print(f"to feed {args.gpu_rate:,.0f} samples/s with DegradedPatches: {math.ceil(args.gpu_rate / rate)} loader workers "
          "at 1 thread each, on as many free cores (from the CPU time)")


if __name__ == "__main__":
    main()
