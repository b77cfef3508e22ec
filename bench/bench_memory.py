"""Speed and peak memory of eval.py --upscale: the enlarger's tiles against one tile (the whole image).

    python -m bench.bench_memory                        # both tables: every shipped x4 model, then the default model
    python -m bench.bench_memory --cases small --runs 3 # the 1000x750 table only, three runs a side
    python -m bench.bench_memory --cases x4             # the 4000x3000 JPEG x4 only (long), against one whole-image run

Each enlargement is ``eval.py --upscale`` in a fresh process under ``/usr/bin/time -v``: its peak
RSS minus that of a process that only imports torch and the enlarger (the baseline), and the
seconds eval.py prints for the image (read to written, without start-up and model load).

- small: each shipped x4 model on a 1000x750 JPEG (a 12 MP result), the default tiles ("tiled")
  against ``--tile 100000`` ("whole": the whole network on the whole image in one tile). The two
  alternate (A B A B, ``--runs`` pairs), so a change in the machine's load hits both; medians.
  Targets: tiled/whole <= 1.2, the tiled peak <= 1.5 x the 8-bit output + 300 MB.
- x4, outscale2: the default model on a 4000x3000 JPEG, x4 (192 MP) and --outscale 2; the time
  against the whole-image time per output pixel of the small case (target: <= 1.3 x).

The photos are synthetic JPEGs (smooth colour fields, edges and noise) made in a temporary folder.
Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr.distributed import available_cores
from sr.weights import DEFAULT_WEIGHTS, shipped_names

ROOT = Path(__file__).resolve().parent.parent
MB = 10**6  # decimal megabytes, as the issue states its targets
WHOLE = "100000"  # --tile larger than any side here: one tile


def cpu_line(threads: int) -> str:
    """The CPU as lscpu names it, the kernels PyTorch uses, the threads given, and the load beside this run."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = "unknown CPU"
    return (f"{name} ({torch.backends.cpu.get_cpu_capability()}), {threads} of {os.cpu_count()} cores given; "
            f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f} before the runs")


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


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(peak RSS in MB, stdout) of ``command`` under /usr/bin/time -v; exits if it fails."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return kb * 1024 / MB, result.stdout


def enlarge(photo: Path, weights: str, env: dict[str, str], threads: int, *extra: str) -> tuple[float, float]:
    """(seconds eval.py took for the image, peak RSS in MB) of one enlargement."""
    command = [sys.executable, "eval.py", "--weights", weights, "--upscale", str(photo), "--output",
               str(photo.with_name("big.jpg")), "--device", "cpu", "--threads", str(threads), *extra]
    peak, out = peak_rss(command, env)
    return float(re.search(r" in ([\d.]+) s$", out, re.MULTILINE).group(1)), peak


def small_table(folder: Path, models: list[str], runs: int, env: dict[str, str], threads: int, base: float) -> dict:
    """The 1000x750 table; returns the default model's whole-image seconds per output pixel."""
    photo = folder / "small.jpg"
    synthetic_photo(photo, 1000, 750)
    target = 1.5 * 4000 * 3000 * 3 / MB + 300
    print(f"1000x750 JPEG x4 (12 MP out), {runs} alternating pairs, medians; peaks above the baseline; "
          f"target <= {target:.0f} MB tiled, ratio <= 1.2\n")
    print("| model | tiled | whole | tiled/whole | fastest run of each | tiled peak | whole peak | met |")
    print("|---|---|---|---|---|---|---|---|")
    per_pixel = {}
    for weights in models:
        tiled, whole = [], []
        for _ in range(runs):
            tiled.append(enlarge(photo, weights, env, threads))
            whole.append(enlarge(photo, weights, env, threads, "--tile", WHOLE))
        (t, tp), (w, wp) = [(statistics.median(s for s, _ in r), max(p for _, p in r) - base) for r in (tiled, whole)]
        fastest = min(s for s, _ in tiled) / min(s for s, _ in whole)  # the runs the other jobs disturbed least
        met = "yes" if t / w <= 1.2 and tp <= target else "no"
        print(f"| `{weights}` | {t:.1f} s | {w:.1f} s | {t / w:.2f} | {fastest:.2f} | {tp:.0f} MB | {wp:.0f} MB | {met} |",
              flush=True)
        per_pixel[weights] = w / (4000 * 3000)
    return per_pixel


def whole_rate(folder: Path, env: dict[str, str], threads: int) -> float:
    """The default model's whole-image seconds per output pixel on the 1000x750 JPEG (one run)."""
    photo = folder / "small.jpg"
    synthetic_photo(photo, 1000, 750)
    seconds, _ = enlarge(photo, DEFAULT_WEIGHTS, env, threads, "--tile", WHOLE)
    print(f"{DEFAULT_WEIGHTS}, 1000x750 JPEG x4 in one tile (the whole-image rate): {seconds:.1f} s")
    return seconds / (4000 * 3000)


def photo_table(folder: Path, cases: list[str], env: dict[str, str], threads: int, base: float, per_pixel: float | None) -> None:
    photo = folder / "photo.jpg"
    synthetic_photo(photo, 4000, 3000)
    print(f"\n4000x3000 JPEG, {DEFAULT_WEIGHTS}, one run each; peaks above the baseline\n")
    print("| case | output | time | against the whole-image time per output pixel | peak | target |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        factor, extra = (4, ()) if case == "x4" else (2, ("--outscale", "2"))
        pixels = 4000 * 3000 * factor**2
        seconds, peak = enlarge(photo, DEFAULT_WEIGHTS, env, threads, *extra)
        target = 1.5 * pixels * 3 / MB + 300 if case == "x4" else 600
        against = f"{seconds / (per_pixel * 4000 * 3000 * 16):.2f} x" if per_pixel and case == "x4" else ""
        print(f"| {case} | {4000 * factor}x{3000 * factor} ({pixels / 1e6:.0f} MP) | {seconds / 60:.1f} min | {against} | "
              f"{peak - base:.0f} MB | <= {target:.0f} MB: {'met' if peak - base <= target else 'MISSED'} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=[n for n in shipped_names() if n.endswith("_x4")],
                   help="the small table's models (default: every shipped x4 model)")
    p.add_argument("--cases", nargs="+", choices=("small", "x4", "outscale2"), default=["small", "x4", "outscale2"])
    p.add_argument("--runs", type=int, default=2, help="alternating tiled/whole pairs a model in the small table")
    p.add_argument("--threads", type=int, default=available_cores(), help="eval.py --threads (default: as eval.py's)")
    args = p.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(cpu_line(args.threads))
    base, _ = peak_rss([sys.executable, "-c", "import torch, sr.enlarge"], env)
    print(f"baseline (import torch, sr.enlarge): {base:.0f} MB\n")
    with tempfile.TemporaryDirectory() as tmp:
        per_pixel = {}
        if "small" in args.cases:
            per_pixel = small_table(Path(tmp), args.models, args.runs, env, args.threads, base)
        photo_cases = [c for c in args.cases if c != "small"]
        if "x4" in photo_cases and DEFAULT_WEIGHTS not in per_pixel:  # the rate the x4 case is held against
            per_pixel[DEFAULT_WEIGHTS] = whole_rate(Path(tmp), env, args.threads)
        if photo_cases:
            photo_table(Path(tmp), photo_cases, env, args.threads, base, per_pixel.get(DEFAULT_WEIGHTS))


if __name__ == "__main__":
    main()
