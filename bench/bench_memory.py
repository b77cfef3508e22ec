"""Peak memory of eval.py --upscale on a phone-sized photo: the streaming path against its targets.

    python -m bench.bench_memory                       # 4000x3000 JPEG x4 and --outscale 2, srresnet_x4
    python -m bench.bench_memory --weights fsrcnn_x4   # the fast model (the same memory targets)
    python -m bench.bench_memory --quick               # a 1000x750 JPEG instead (a minute, not an hour)

Each case runs ``eval.py --upscale`` in a fresh process under ``/usr/bin/time -v`` and reads its
peak RSS, minus the peak of a process that only imports torch and sr (the baseline). The photo
is a synthetic JPEG (smooth colour fields, edges and noise) made in a temporary folder. Targets
(issue 19): x4 <= 1.5 x the 8-bit output's size + 300 MB; with --outscale 2 <= 600 MB.
Speed: a 1-megapixel result through the streaming path against the whole-image path
(``Upscaler.enlarge_photo`` + ``write_photo``, today's before the streaming path), alternating,
in this process, as a ratio (below 1: the streaming path is faster). Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr.inference import Upscaler
from sr.photo import read_photo, write_image, write_photo

ROOT = Path(__file__).resolve().parent.parent
MB = 10**6  # decimal megabytes, as the issue states its targets


def cpu_line() -> str:
    """The CPU as lscpu names it, with the instruction set PyTorch's kernels use."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({torch.backends.cpu.get_cpu_capability()}), {cores} cores available; torch {torch.__version__}"


def synthetic_photo(path: Path, width: int, height: int, quality: int = 95) -> None:
    """A photo-like JPEG: smooth gradients, a few hard edges, sensor-like noise; built in strips."""
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (width, height))
    xx = np.linspace(0, 1, width)[None, :]
    for top in range(0, height, 500):
        rows = min(500, height - top)
        yy = np.linspace(top / height, (top + rows) / height, rows, endpoint=False)[:, None]
        planes = []
        for c in range(3):
            field = 128 + 90 * np.sin(6 * xx + 4 * yy + c) * np.cos(3 * yy - 2 * xx * c)
            field += 40 * ((xx * 7 + yy * 5 + c) % 1 > 0.5)  # hard edges
            planes.append(field + rng.normal(0, 6, (rows, width)))
        strip = np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)
        image.paste(Image.fromarray(strip), (0, top))
    image.save(path, quality=quality)


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``command`` under /usr/bin/time -v; exits if it fails."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return kb * 1024 / MB, seconds


def speed_ratio(weights: str, folder: Path, runs: int) -> tuple[float, float]:
    """Median seconds (streaming, whole-image) for a 1-megapixel result, read to written."""
    up = Upscaler.load(weights, "cpu")
    side = 1000 // up.scale
    src = folder / "small.png"
    Image.fromarray(np.asarray(Image.open(folder / "photo.jpg").crop((0, 0, side, side)))).save(src)

    def streaming():
        photo = read_photo(src, compact=True)
        image, _ = up.enlarge_image(photo, "png")
        write_image(folder / "s.png", image, photo, "png")

    def whole():
        big = up.enlarge_photo(read_photo(src))
        write_photo(folder / "w.png", big)

    times: dict = {streaming: [], whole: []}
    for fn in times:
        fn()  # warm-up: oneDNN builds its kernels
    for _ in range(runs):
        for fn, spent in times.items():
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return statistics.median(times[streaming]), statistics.median(times[whole])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="srresnet_x4", help="a shipped name or checkpoint (default: the default model)")
    p.add_argument("--quick", action="store_true", help="a 1000x750 photo instead of 4000x3000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3, help="timed runs of the 1-megapixel speed check (0: skip it)")
    p.add_argument("--cases", nargs="+", choices=("model-scale", "outscale2"), default=["model-scale", "outscale2"],
                   help="which enlargements to measure (each is an hour of one core with the default model)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (1000, 750) if args.quick else (4000, 3000)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(cpu_line())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic_photo(folder / "photo.jpg", width, height)
        base, _ = peak_rss([sys.executable, "-c", "import torch, sr.inference, sr.streaming"], env)
        print(f"baseline (import torch, sr): {base:.0f} MB; photo {width}x{height} JPEG; {args.weights}, "
              f"{args.threads} threads\n")
        print("| case | output | peak RSS above baseline | per output pixel | 8-bit output | target | time |")
        print("|---|---|---|---|---|---|---|")
        scale = Upscaler.load(args.weights, "cpu").scale
        for outscale in [{"model-scale": None, "outscale2": 2}[case] for case in args.cases]:
            factor = outscale or scale
            out_w, out_h = width * factor, height * factor
            command = [sys.executable, "eval.py", "--weights", args.weights, "--upscale", str(folder / "photo.jpg"),
                       "--output", str(folder / "big.jpg"), "--device", "cpu"]
            command += ["--outscale", str(outscale)] if outscale else []
            peak, seconds = peak_rss(command, env)
            above = peak - base
            pixels = out_w * out_h
            eight_bit = pixels * 3 / MB
            target = 1.5 * eight_bit + 300 if outscale is None else 600
            verdict = "met" if above <= target else "MISSED"
            print(f"| x{factor:g}{' (--outscale 2)' if outscale else ''} | {out_w}x{out_h} ({pixels / 1e6:.0f} MP) | "
                  f"{above:.0f} MB | {above * MB / pixels:.2f} B | {eight_bit:.0f} MB | <= {target:.0f} MB: {verdict} | "
                  f"{seconds:.0f} s |")
        if args.runs == 0:
            return
        stream, whole = speed_ratio(args.weights, folder, args.runs)
        print(f"\n1-megapixel result, read to written, median of {args.runs}: streaming {stream:.2f} s, "
              f"whole-image {whole:.2f} s, ratio {stream / whole:.2f} (<= 1: no slower)")


if __name__ == "__main__":
    main()
