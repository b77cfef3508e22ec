"""Two cores for training: one run on two threads, or two runs side by side on one thread each?

    python -m bench.bench_cores --train data/h5/T91_x3_lr-hr_y_aug5.h5 --eval data/h5/T91-val_x3_lr-hr_y.h5 \
        --flags "--arch fsrcnn-paper --scale 3 --batch-size 32 --loss l1"

Runs ``train_srcnn.py`` with the given flags for ``--seconds`` each way and reads the
samples/s its progress bar shows at the end (start-up excluded by the bar's own rate): one run
with OMP_NUM_THREADS=2, then two runs at once with OMP_NUM_THREADS=1 (their rates added).
Needs the machine otherwise idle. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_memory import cpu_line

ROOT = Path(__file__).resolve().parent.parent


def _run_together(flags: list[str], folder: Path, threads: int, runs: int, seconds: float) -> list[float]:
    """Start ``runs`` copies at once, stop them all after ``seconds`` (SIGTERM: each saves and
    exits), and return the samples/s each one's progress bar showed last."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = []
    for i in range(runs):
        log = folder / f"{threads}t_{i}.log"
        with open(log, "w") as err:  # a file, not a pipe: a full pipe would stall the run
            command = [sys.executable, "train_srcnn.py", *flags, "--epochs", "50", "--device", "cpu",
                       "--out", str(folder / f"{threads}t_{i}")]
            started.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err), log))
    time.sleep(seconds)
    for process, _ in started:
        process.terminate()
    rates = []
    for process, log in started:
        process.wait()
        found = re.findall(r"([\d.]+)it/s", log.read_text().replace("\r", "\n"))
        if not found:
            raise SystemExit(f"no progress read from train_srcnn.py:\n{log.read_text()[-1500:]}")
        rates.append(float(found[-1]))
    return rates


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--flags", default="--arch fsrcnn-paper --scale 3 --batch-size 32 --loss l1", help="train_srcnn.py flags")
    p.add_argument("--seconds", type=float, default=90)
    args = p.parse_args(argv)
    flags = ["--train", args.train, "--eval", args.eval, *shlex.split(args.flags)]
    print(cpu_line())
    print(f"train_srcnn.py {' '.join(flags)}; {args.seconds:g} s each way")
    with tempfile.TemporaryDirectory() as tmp:
        (one,) = _run_together(flags, Path(tmp), threads=2, runs=1, seconds=args.seconds)
        two = _run_together(flags, Path(tmp), threads=1, runs=2, seconds=args.seconds)
    print(f"one run, 2 threads: {one:.0f} samples/s")
    print(f"two runs, 1 thread each: {two[0]:.0f} + {two[1]:.0f} = {sum(two):.0f} samples/s "
          f"(ratio to one run: {sum(two) / one:.2f})")


if __name__ == "__main__":
    main()
