"""Run every comparison of the experiment report at its own settings, then write the results.

    python -m experiments.run                    # all runs (skips finished ones, resumes cut ones), then results
    python -m experiments.run --only srcnn-loss-x2 fsrcnn-loss-x2
    python -m experiments.run --results-only     # rebuild experiments/results.md and the plots
    python -m experiments.run --seeds 3 --only srcnn-loss-x3 fsrcnn-loss-x3   # the spread over seeds 0, 1, 2
    python -m experiments.run --list

Each run (``experiments.comparisons``) trains with this project's own scripts into
experiments/runs/<name>/ (metrics.csv, last.pth, best.pth, args.json, run_info.json). Results:
experiments/results.md (our final-epoch PSNR beside the report's) and
experiments/plots/<group>.png (PSNR per epoch; needs matplotlib: pip install -e ".[plots]").

With --seeds N each chosen run is trained again with seeds 0..N-1 into
experiments/runs/seeds/<name>_seed<k>/, on the current data files (training images with
validation images held out), and its last epoch is then scored on the test set by eval.py
(test_scores.json). results.md gives mean ± standard deviation per run, and the gap of each
pair, so a conclusion resting on a small gap shows whether seeds agree on it.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
import statistics
from dataclasses import replace
from pathlib import Path

from sr.atomic import atomic_path, atomic_write_text
from sr.data.h5 import DEFAULT_SETS, default_h5_path
from experiments.comparisons import BICUBIC, GROUPS, REPORT_SRGAN, REPORT_SRGAN_PRETRAIN, RUNS, SHOWN_ALSO, Run

ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = ROOT / "experiments" / "runs"
PLOTS_DIR = ROOT / "experiments" / "plots"
RESULTS = ROOT / "experiments" / "results.md"
SEEDS_DIR = RUNS_DIR / "seeds"


def ensure_data(run: Run, py: str) -> None:
    scale, layout, color = run.data
    sets = DEFAULT_SETS[color]
    if all(default_h5_path(s, scale, layout, color).exists() for s in sets):
        return
    argv = [py, "prepare_h5.py", "--scale", str(scale), "--layout", layout, "--color", color]
    print("preparing data:", " ".join(argv[1:]), flush=True)
    subprocess.run(argv, cwd=ROOT, check=True)


def epochs_done(out: Path) -> int:
    try:
        with open(out / "metrics.csv") as f:
            return len(list(csv.DictReader(f)))
    except OSError:
        return 0


def seeded(run: Run, seed: int) -> Run:
    """The run again with another seed, in experiments/runs/seeds/ (its name keeps the seed)."""
    return replace(run, name=f"seeds/{run.name}_seed{seed}", argv=run.argv + ("--seed", str(seed)))


def score_on_test(run: Run, py: str) -> None:
    """The last epoch's score on the group's test set, by eval.py, after training (chooses nothing)."""
    out = RUNS_DIR / run.name
    scores = out / "test_scores.json"
    if scores.exists() or epochs_done(out) < run.epochs:
        return
    test_set = BICUBIC[run.data[0]][0]
    subprocess.run([py, "eval.py", "--weights", str(out / "last.pth"), "--dataset", test_set, "--json", str(scores)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(scores.read_text())  # eval.py names the weights by absolute path; keep the record portable
    result["weights"] = str(Path(result["weights"]).resolve().relative_to(ROOT))
    atomic_write_text(scores, json.dumps(result, indent=2) + "\n")


def execute(run: Run, py: str, device: str) -> None:
    out = RUNS_DIR / run.name
    done = epochs_done(out)
    if done >= run.epochs:
        print(f"{run.name}: done ({done} epochs)")
        return
    for need in run.needs:
        if epochs_done(RUNS_DIR / need) == 0:
            raise SystemExit(f"{run.name} needs {need} first (run its group)")
    ensure_data(run, py)
    if (out / "last.pth").exists():
        argv = [py, f"{run.script}.py", "--resume", str(out / "last.pth"), "--device", device]
    else:
        argv = [py, f"{run.script}.py", *run.argv, "--out", str(out), "--device", device]
    print(f"{run.name}: {' '.join(argv[1:])}", flush=True)
    start = time.time()
    result = subprocess.run(argv, cwd=ROOT)
    info_path = out / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {"sessions": []}
    args_file = out / "args.json"
    where = json.loads(args_file.read_text()).get("machine", "?") if args_file.exists() else "?"
    info["sessions"].append({"machine": where, "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
                             "wall_seconds": round(time.time() - start, 1), "exit_code": result.returncode})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    if result.returncode != 0:
        raise SystemExit(f"{run.name} stopped with exit code {result.returncode}; run again to resume it")


def read_metrics(name: str) -> list[dict]:
    try:
        with open(RUNS_DIR / name / "metrics.csv") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def run_info(name: str) -> dict:
    path = RUNS_DIR / name / "run_info.json"
    return json.loads(path.read_text()) if path.exists() else {"sessions": []}


def results_table() -> str:
    lines = ["| group | run | eval set | epochs | bicubic | report final PSNR | our final PSNR / SSIM | our best PSNR "
             "| where | training time | samples/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in RUNS:
        rows = read_metrics(run.name)
        info = run_info(run.name)
        eval_set, bicubic = BICUBIC[run.data[0]]
        head = f"| {run.group} | {run.name} | {eval_set} x{run.data[0]} | {len(rows)}/{run.epochs} | {bicubic:.2f} | {_fmt(run.report_psnr)} |"
        if not rows:
            lines.append(f"{head} not run | | | | |")
            continue
        last = rows[-1]
        best = max(float(r["psnr"]) for r in rows)
        seconds = sum(float(r["seconds"]) for r in rows)
        where = "; ".join(sorted({s["machine"] for s in info["sessions"]})) or "?"
        rate = sum(float(r["samples_per_s"]) for r in rows) / len(rows)
        lines.append(f"{head} {float(last['psnr']):.2f} / {float(last['ssim']):.4f} | {best:.2f} | {where} "
                     f"| {_duration(seconds)} | {rate:,.0f} |")
    return "\n".join(lines)


def seeds_table() -> str:
    """Mean ± std over seeds of each seeded run's last-epoch test PSNR, and each pair's gap."""
    rows = ["| group | run | seeds | test set | last-epoch PSNR per seed | mean ± std | gap to the group's first run, "
            "per seed: mean ± std |", "|---|---|---|---|---|---|---|"]
    found = False
    for group in GROUPS:
        runs = [r for r in RUNS if r.group == group]
        psnrs = {r.name: seed_scores(r.name) for r in runs}
        first = psnrs[runs[0].name]
        for run in runs:
            values = psnrs[run.name]
            if len(values) < 2:
                continue
            found = True
            shared = sorted(set(values) & set(first))
            gaps = [values[s] - first[s] for s in shared]
            gap = "—" if run is runs[0] or len(gaps) < 2 else f"{statistics.mean(gaps):+.3f} ± {statistics.stdev(gaps):.3f}"
            rows.append(f"| {group} | {run.name} | {', '.join(map(str, sorted(values)))} | {BICUBIC[run.data[0]][0]} "
                        f"| {' / '.join(f'{values[s]:.3f}' for s in sorted(values))} "
                        f"| {statistics.mean(values.values()):.3f} ± {statistics.stdev(values.values()):.3f} | {gap} |")
    return "\n".join(rows) if found else ""


def seed_scores(name: str) -> dict[int, float]:
    scores = {}
    for path in sorted(SEEDS_DIR.glob(f"{name}_seed*/test_scores.json")):
        seed = int(path.parent.name.rsplit("_seed", 1)[1])
        scores[seed] = json.loads(path.read_text())["psnr"]
    return scores


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def plot_groups() -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e \".[plots]\")")
        return []
    PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for group in GROUPS:
        runs = [r for r in RUNS if (r.group == group or r.name in SHOWN_ALSO.get(group, ())) and read_metrics(r.name)]
        if not runs:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.8), dpi=110)
        for i, run in enumerate(runs):
            rows = read_metrics(run.name)
            color = f"C{i}"
            ax.plot([int(r["epoch"]) for r in rows], [float(r["psnr"]) for r in rows], marker="o", color=color,
                    label=f"{run.name} (ours)")
            if run.report_curve:
                ax.plot(range(1, len(run.report_curve) + 1), run.report_curve, linestyle="--", color=color, alpha=0.6,
                        label=f"{run.name} (report)")
        eval_set, bicubic = BICUBIC[runs[0].data[0]]
        ax.axhline(bicubic, color="gray", linewidth=1, linestyle=":", label=f"bicubic ({eval_set})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.set_xlabel("epoch")
        ax.set_ylabel("eval PSNR on Y (dB)")
        ax.set_title(group)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = PLOTS_DIR / f"{group}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(path)
    return written


def write_results() -> None:
    parts = ["# Reproduction of the experiment report", "",
             "Written by `python -m experiments.run`. PSNR/SSIM on Y, border = scale, MATLAB bicubic degradation "
             "(the standard protocol); the report's own evaluation is unknown, so its figures are shown as printed. "
             "Every run uses the report's full settings (whole training set, its epochs, batch 32, or 128 for SRGAN), "
             "on the CPU where no GPU was at hand; samples/s is the training epoch's, evaluation excluded.", "",
             results_table(), ""]
    pre, gan = read_metrics("srresnet_l1_x4"), read_metrics("srgan_srresnet_x4")
    if pre and gan:
        parts += ["## SRGAN against its pretrained generator (BSDS100 x4)", "",
                  "| model | report PSNR / SSIM | ours PSNR / SSIM |", "|---|---|---|",
                  f"| pretrained SRResNet (L1) | {REPORT_SRGAN_PRETRAIN[0]:.2f} / {REPORT_SRGAN_PRETRAIN[1]:.4f} | "
                  f"{max(float(r['psnr']) for r in pre):.2f} / {float(max(pre, key=lambda r: float(r['psnr']))['ssim']):.4f} (best.pth) |",
                  f"| SRGAN | {REPORT_SRGAN[0]:.2f} / {REPORT_SRGAN[1]:.4f} | {float(gan[-1]['psnr']):.2f} / "
                  f"{float(gan[-1]['ssim']):.4f} (last.pth) |", ""]
    seeds = seeds_table()
    if seeds:
        parts += ["## Spread over seeds", "",
                  "The runs above are one seed each. These were trained again with seeds 0, 1 and 2 "
                  "(`python -m experiments.run --seeds 3 --only GROUP`) on the current data files: the training "
                  "images with validation images held out, the per-epoch curve on those. Each last epoch was then "
                  "scored on the test set by eval.py; nothing was chosen on it. Standard deviations are over seeds "
                  "(n = 3, sample std).", "", seeds, ""]
    for path in plot_groups():
        parts.append(f"![{path.stem}](plots/{path.name})")
    atomic_write_text(RESULTS, "\n".join(parts) + "\n")
    print(f"wrote {RESULTS}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=GROUPS + [r.name for r in RUNS], help="groups or runs to do")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--results-only", action="store_true", help="only rebuild results.md and the plots")
    p.add_argument("--seeds", type=int, default=0,
                   help="train each chosen run with seeds 0..N-1 into experiments/runs/seeds/ and score its last epoch")
    p.add_argument("--list", action="store_true", help="list the groups and runs")
    args = p.parse_args()
    if args.list:
        for run in RUNS:
            print(f"{run.group:<20} {run.name:<22} {run.script}.py {' '.join(run.argv)}")
        return
    if not args.results_only:
        chosen = [r for r in RUNS if not args.only or r.group in args.only or r.name in args.only]
        if args.seeds:
            chosen = [seeded(r, seed) for r in chosen for seed in range(args.seeds)]
        for run in chosen:
            execute(run, sys.executable, args.device)
            if args.seeds:
                score_on_test(run, sys.executable)
    write_results()


if __name__ == "__main__":
    main()
