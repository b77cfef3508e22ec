"""Replay a shipped weight's recipe from scratch: prepare the data, train every run, export.

    python -m experiments.reproduce weights/fsrcnn_x4.json                  # the whole recipe
    python -m experiments.reproduce weights/fsrcnn_x4.json --out-dir replay/fsrcnn_x4
    python -m experiments.reproduce weights/fsrcnn_x4.json --epochs-scale 0.01 --max-images 4   # a quick check

Each step runs the recorded command unchanged in a fresh folder (default replay/<name>/), so
the recipe's relative paths (data/h5/..., runs/...) land there and --init finds the run
before it; the data root is the replaying machine's ($SR_DATA or --data-root). Precision
flags are dropped unless --keep-precision: the machine that replays chooses its own, as
training does by default (bf16 where it is native, else fp32). At the end
experiments/export_weights.py writes <out-dir>/weights/<name>.safetensors and .json, whose scores
can be compared with the shipped ones by eval.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

from sr.cli import add_data_root, file_name, run
from sr.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
# The only programs a recipe may run: the project's own entry points, each as an argument list
# (subprocess, no shell). A recipe is a file someone sent; "python -c ..." in it would run anything.
SCRIPTS = ("prepare_h5.py", "train_srcnn.py", "train_srgan.py", "eval.py")
MODULES = ("experiments.export_weights",)
PRECISION_FLAGS = {"--amp": 0, "--no-amp": 0, "--amp-dtype": 1, "--channels-last": 0, "--no-channels-last": 0}


def load_recipe(path: Path) -> dict:
    try:
        recipe = json.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read recipe {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not a recipe (invalid JSON: {e.msg} at line {e.lineno})") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("runs"), list) or not recipe["runs"]:
        raise UserError(f"{path} is not a recipe: it has no 'runs' list")
    try:  # the replay folder is replay/<name> by default
        file_name(recipe.get("name") if isinstance(recipe.get("name"), str) else "")
    except argparse.ArgumentTypeError:
        raise UserError(f"{path}: the recipe's name {str(recipe.get('name'))[:60]!r} is not a plain name: "
                        "replay/<name> would be outside the replay folder; nothing was run") from None
    missing = [i + 1 for i, r in enumerate(recipe["runs"]) if not r.get("prepare")]
    if missing:
        raise UserError(f"{path}: run(s) {', '.join(map(str, missing))} do not record the prepare_h5.py call that made "
                        "their data (recipes written before it was recorded cannot be replayed)")
    return recipe


def set_flag(words: list[str], flag: str, value: str) -> list[str]:
    """``words`` with ``flag``'s value replaced, or the flag appended."""
    if flag in words:
        i = words.index(flag)
        return words[: i + 1] + [value] + words[i + 2:]
    return words + [flag, value]


def without_precision(words: list[str]) -> list[str]:
    kept, skip = [], 0
    for word in words:
        if skip:
            skip -= 1
        elif word in PRECISION_FLAGS:
            skip = PRECISION_FLAGS[word]
        else:
            kept.append(word)
    return kept


def training_words(command: str, epochs_scale: float, keep_precision: bool) -> list[str]:
    words = shlex.split(command)
    if epochs_scale != 1 and "--epochs" in words:
        epochs = int(words[words.index("--epochs") + 1])
        words = set_flag(words, "--epochs", str(max(1, math.ceil(epochs * epochs_scale))))
    return words if keep_precision else without_precision(words)


def plan(recipe: dict, args) -> list[list[str]]:
    """The commands of the replay in order, as argv lists (scripts named relative to the repository)."""
    steps, prepared = [], set()
    for r in recipe["runs"]:
        # The training file's call, then the validation file's where another call made it.
        for call in filter(None, (r["prepare"], r.get("prepare_eval"))):
            prepare = shlex.split(call)
            if args.max_images:
                prepare = set_flag(prepare, "--max-images", str(args.max_images))
            if shlex.join(prepare) not in prepared:  # the x2 and x4 runs of a chain may share their x3 data
                prepared.add(shlex.join(prepare))
                steps.append(prepare)
        # The command leaves --out to the caller; the recorded run folder is where a later --init looks.
        steps.append(set_flag(training_words(r["command"], args.epochs_scale, args.keep_precision), "--out", r["run"]))
    if recipe.get("export"):
        export = shlex.split(recipe["export"])
    else:  # recipes written before the export call was recorded: from the checkpoint it names
        run_dir, _, checkpoint = recipe["checkpoint"].split(" ")[0].rpartition("/")
        export = ["python", "-m", "experiments.export_weights", run_dir, "--name", recipe["name"], "--checkpoint", checkpoint]
    steps.append(export + ["--out-dir", "weights", "--note", f"replay of {recipe['name']}'s recipe"])
    for step in steps:  # all of them before the first runs
        check_step(step)
    return steps


WRITING_FLAGS = ("--output", "--eval-output", "--out", "--out-dir", "--name")


def check_step(step: list[str]) -> None:
    """UserError unless ``step`` is ``python <one of SCRIPTS> ...`` or ``python -m <one of MODULES> ...``."""
    runs = step[1:2] if step[1:2] != ["-m"] else step[1:3]
    allowed = (len(runs) == 1 and runs[0] in SCRIPTS) or (len(runs) == 2 and runs[1] in MODULES)
    if step[:1] != ["python"] or not allowed:
        shown = shlex.join(step)
        raise UserError(f"the recipe holds a step that is not one of the project's entry points ({', '.join(SCRIPTS)}, "
                        f"python -m {', '.join(MODULES)}): {shown[:120]}{'...' if len(shown) > 120 else ''}; nothing was run")
    # What a step writes is named by these flags; what it reads (--images, --train, ...) may lie anywhere.
    written = [value for flag, value in zip(step, step[1:]) if flag in WRITING_FLAGS]
    written += [word.split("=", 1)[1] for word in step if word.split("=", 1)[0] in WRITING_FLAGS and "=" in word]
    escaping = [word for word in written if outside(word)]
    if escaping:
        raise UserError(f"the recipe's step {shlex.join(step[:3])} ... names {escaping[0][:80]!r}, outside the replay "
                        "folder (an absolute path, ~ or '..'); a recipe writes only in its replay folder; nothing was run")


def outside(word: str) -> bool:
    """Whether an argument names a place outside the folder a step runs in: an absolute path, a
    home folder (``~``), or one with a '..' part; for ``--flag=value`` the value. Every step runs
    in the replay folder, so a recipe that names no such path writes and deletes only there."""
    value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
    path = PurePosixPath(value)
    return path.is_absolute() or value.startswith("~") or ".." in path.parts


def execute(step: list[str], cwd: Path, env: dict) -> None:
    check_step(step)
    argv = [sys.executable, *step[1:]]
    if not step[1].startswith("-"):
        argv[1] = str(ROOT / step[1])  # the repository's script, run from the replay folder
    print(f"$ {shlex.join(step)}", flush=True)
    result = subprocess.run(argv, cwd=cwd, env=env)
    if result.returncode != 0:
        raise UserError(f"the replay stopped: {shlex.join(step[:3])} ... exited with {result.returncode}; "
                        f"its output is above, and {cwd} keeps what was written")


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", type=Path, help="weights/<name>.json")
    p.add_argument("--out-dir", type=Path, help="fresh folder to replay in (default: replay/<name>)")
    p.add_argument("--epochs-scale", type=float, default=1.0,
                   help="multiply every run's epochs by this, at least 1 (e.g. 0.01 for a check that the replay runs)")
    p.add_argument("--max-images", type=int, default=0, help="train on the first N images only (0: all, as recorded)")
    add_data_root(p)
    p.add_argument("--keep-precision", action="store_true", help="keep the recipe's --amp flags instead of this machine's default")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    return p.parse_args(argv)


def main(args) -> None:
    recipe = load_recipe(args.recipe)
    steps = plan(recipe, args)
    out = args.out_dir or Path("replay") / recipe["name"]
    if args.dry_run:
        print("\n".join(shlex.join(s) for s in steps))
        return
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty: a replay starts in a fresh folder (choose one with --out-dir)")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if args.data_root:
        env["SR_DATA"] = str(Path(args.data_root).resolve())
    elif env.get("SR_DATA"):
        env["SR_DATA"] = str(Path(env["SR_DATA"]).resolve())
    else:
        env["SR_DATA"] = str(Path("data").resolve())  # the default data root of the folder replay is called from
    for step in steps:
        execute(step, out, env)
    print(f"replayed {recipe['name']} in {out}: {out / 'weights' / recipe['name']}.safetensors")


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
