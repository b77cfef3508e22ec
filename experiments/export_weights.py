"""Turn a finished run into shipped weights: weights/<name>.safetensors and its recipe, weights/<name>.json.

    python -m experiments.export_weights runs/fsrcnn-paper_l1_x3 --name fsrcnn_x3
    python -m experiments.export_weights runs/srresnet_x4 --name srresnet_x4 --half --checkpoint last.pth

The .safetensors holds only what eval.py needs (architecture, its arguments, scale, colour,
layout, name as JSON metadata; the weights as tensors; ``sr.checkpoint.save_weights``), and
replaces a weights/<name>.pth of earlier exports. The recipe lists every run behind the
weights, following --init back to the start: the command, the training data's settings, epochs, seconds, where it ran, and the
eval scores of each epoch's end. The command repeats the settings that define the run
(``RunConfig.SETTINGS``, and ``GanConfig.SETTINGS`` for train_srgan.py), in their declared order.
Relative paths in args.json are relative to the folder the run was started in: this one, or
else the repository root.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py

from sr.data.degradation_settings import DEFAULTS
from sr.atomic import atomic_write_text
from sr.checkpoint import load_checkpoint, save_weights
from sr.cli import ArgumentParser, file_name, run
from sr.errors import quoted
from sr.training.config import RunConfig
from sr.training.gan import GanConfig

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"train_srcnn": RunConfig.SETTINGS, "train_srgan": GanConfig.SETTINGS}


def command(args: dict) -> str:
    """The training call that reproduces a run, from its args.json."""
    script = args.get("script") or ("train_srgan" if "phase" in args else "train_srcnn")  # only train_srgan has --phase
    parts = [f"python {script}.py"]
    for key in SETTINGS[script]:
        value = args.get(key)
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "degradation":  # --degrade, and each --degrade-* flag that differs from its default
            parts.append("--degrade")
            defaults = DEFAULTS.to_dict()
            for name, setting in value.items():
                if setting != defaults.get(name):
                    words = setting if isinstance(setting, list) else [setting]
                    parts.append(f"--degrade-{name.replace('_', '-')} " + " ".join(map(str, words)))
        elif isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):  # --eval-degrade KIND ...
            parts.append(" ".join([flag, *map(str, value)]))
        elif key in ("ema", "last_layer_lr") and value == (0.0 if key == "ema" else 1.0):
            continue  # off: the flag's default, as runs before these flags existed
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def resolve(path: str) -> Path:
    """A path from args.json: relative ones to the working folder, else to the repository root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return ROOT / p


def describe_run(run_dir: Path) -> dict:
    args = json.loads((run_dir / "args.json").read_text())
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    data, validation = h5_facts(args["train"]), h5_facts(args["eval"])
    described = {
        "run": str(run_dir),
        # The prepare_h5.py call that wrote both files; a replay runs it before the training command.
        "prepare": data.pop("command", None),
        "command": command(args),
        "data": data,
        "validation": {**{k: validation[k] for k in ("source_name", "images", "source") if k in validation},
                       **({"lr_jpeg_quality": args["eval_jpeg"]} if args.get("eval_jpeg") is not None else {}),
                       **({"lr_degradations": args["eval_degrade"]} if args.get("eval_degrade") else {})},
        # --ema: the exported and evaluated weights are the moving average, not the trained ones.
        **({"weights": f"exponential moving average of the trained weights, decay {args['ema']}"} if args.get("ema") else {}),
        "epochs": len(rows),
        "seconds": round(sum(float(r["seconds"]) for r in rows), 1),
        "machine": args.get("machine", "?"),
        "per_epoch": [{"epoch": int(r["epoch"]), "psnr": float(r["psnr"]), "ssim": float(r["ssim"]),
                       "loss": float(r["loss"])} for r in rows],
    }
    if described["prepare"] is None:
        del described["prepare"]  # files written before prepare_h5.py recorded its call
    eval_prepare = validation.get("command")
    if eval_prepare and eval_prepare != described.get("prepare"):  # e.g. RGB patches degraded into Y, Y validation
        described["prepare_eval"] = eval_prepare
    return described


def h5_facts(path: str | None) -> dict:
    """The attributes prepare_h5.py wrote into a file (its settings, source, command), and its size."""
    if not path or not resolve(path).exists():
        return {}
    with h5py.File(resolve(path), "r") as f:
        facts = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items() if k != "kind"}
        if "lr" in f and isinstance(f["lr"], h5py.Dataset):
            facts["patches"] = int(f["lr"].shape[0])
    return facts


def chain(run_dir: Path) -> tuple[list[dict], list[Path], tuple[str, str] | None]:
    """This run and, first, the runs its --init (or, for the GAN phase, --generator) came from.

    Returns (the runs of shipped weights it started from, as their recipe lists them; the
    run folders; for a chain that starts from shipped weights, the path it gave and the
    checkpoint those weights were exported from). A chain that reaches shipped weights
    (weights/<name>.safetensors, or .pth from before) takes that recipe's runs, since their run folders are not in the
    repository.
    """
    runs = [run_dir]
    while True:
        args = json.loads((runs[0] / "args.json").read_text())
        init = args.get("init") or args.get("generator")
        if not init:
            return [], runs, None
        start = resolve(init)
        recipe = start.with_suffix(".json")
        if not (start.parent / "args.json").exists() and recipe.exists():
            shipped = json.loads(recipe.read_text())
            return shipped["runs"], runs, (init, shipped["checkpoint"].split(" ")[0])
        runs.insert(0, start.parent)


def starting_from(command: str, given: str, checkpoint: str) -> str:
    """``command`` with its --init/--generator ``given`` (shipped weights) replaced by the run
    checkpoint they were exported from, so that a replay starts from its own earlier run."""
    words = command.split(" ")
    for i, word in enumerate(words[:-1]):
        if word in ("--init", "--generator") and words[i + 1] == given:
            words[i + 1] = checkpoint
    return " ".join(words)


def export_command(args) -> str:
    """This call, as the recipe's last step (the output folder is the caller's)."""
    words = ["python", "-m", "experiments.export_weights", str(args.run), "--name", args.name, "--checkpoint", args.checkpoint]
    return " ".join(words + (["--half"] if args.half else []))


def chosen_by(checkpoint: str, run: dict) -> str:
    """Which set picked the shipped epoch: the run's validation set for best.pth, none for last.pth."""
    if Path(checkpoint).name == "last.pth":
        return "the last epoch of a fixed schedule (no set chose it)"
    validation = run.get("validation", {})
    name = validation.get("source_name", "the run's --eval set")
    jpeg = f" with its LR saved as JPEG q{validation['lr_jpeg_quality']}" if "lr_jpeg_quality" in validation else ""
    if "lr_degradations" in validation:
        jpeg = f" with its LR made as each of {', '.join(validation['lr_degradations'])} (mean over them)"
    average = " (of the weights' moving average)" if "weights" in run else ""
    return f"the highest PSNR{average} on {name}{jpeg}, the run's validation set, over its epochs"


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="python -m experiments.export_weights", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the run folder")
    # A name, not a path: <out-dir>/<name>.pth of an earlier export is deleted.
    p.add_argument("--name", type=file_name, required=True, help="weights/<name>.safetensors, e.g. fsrcnn_x3")
    p.add_argument("--checkpoint", default="best.pth", help="best.pth (default) or last.pth")
    p.add_argument("--half", action="store_true", help="store fp16 weights (loaded back as fp32) to halve the file")
    p.add_argument("--note", default="", help="a sentence for the recipe: why this model, what was tried")
    p.add_argument("--out-dir", type=Path, default=ROOT / "weights", help="where to write (default: weights/)")
    args = p.parse_args(argv)
    state = load_checkpoint(args.run / args.checkpoint)
    weights = {k: (v.half() if args.half and v.is_floating_point() else v) for k, v in state["model"].items()}
    out = args.out_dir
    slim = {k: state[k] for k in ("arch", "model_kwargs", "scale", "color", "layout")}
    save_weights(out / f"{args.name}.safetensors", dict(slim, model=weights, name=args.name))
    stale = out / f"{args.name}.pth"  # an earlier export's pickle: shipped once, as .safetensors
    if stale.exists():
        stale.unlink()
    shipped, folders, start = chain(args.run)
    runs = shipped + [describe_run(r) for r in folders]
    if start:
        first = runs[len(shipped)]
        first["command"] = starting_from(first["command"], *start)
        first["started_from"] = start[0]  # what the run itself was given
    recipe = dict(name=args.name, **{k: state[k] for k in ("arch", "model_kwargs", "scale", "color", "layout")},
                  checkpoint=f"{args.run / args.checkpoint} (epoch {state['epoch']})",
                  chosen_by=chosen_by(args.checkpoint, runs[-1]),
                  export=export_command(args),
                  weights_dtype="float16" if args.half else "float32", note=args.note, runs=runs,
                  total_seconds=round(sum(r["seconds"] for r in runs), 1))
    atomic_write_text(out / f"{args.name}.json", json.dumps(recipe, indent=2) + "\n")
    print(f"wrote {quoted(f'{out / args.name}.safetensors')} and .json: {state['arch']} x{state['scale']}, {len(runs)} run(s), "
          f"{recipe['total_seconds'] / 60:.0f} min of training")


if __name__ == "__main__":
    raise SystemExit(run(main, lambda: None))  # main parses sys.argv itself
