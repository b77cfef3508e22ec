"""Following ``cfg`` through a training run: how many files it visits, how often a reader climbs back up.

    python -m bench.follow_cfg                 # train_srcnn.py, one tiny epoch on synthetic images
    python -m bench.follow_cfg --script train_srgan

What a reader meets when following the run's config from the script, counted. This
measures it on a real run (a few seconds on synthetic images in a temporary folder) with
``sys.setprofile``:

- **files visited**: the project files with a frame that holds the config (a local, or
  ``self``) while the run goes;
- **climbs**: the distinct call sites where code calls *back up*: from a frame in file A into a
  function of a file B that is already on the stack above A (a callback, a closure of the
  script, a hook into the caller's module), while the config is in scope. Each is a place
  where the reader, having gone down into A, has to go back up to B to follow the story.

Calls within one file, into the standard library or into torch are not counted. Not a test.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def _project_path(filename: str) -> str | None:
    path = Path(filename)
    if not path.is_absolute():  # "<frozen os>", "<string>": not files of ours
        return None
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    return None if relative.parts[0] in ("tests", "bench", ".venv") else str(relative)


def _project_file(code) -> str | None:
    return _project_path(code.co_filename)


def follow(run, config_types: tuple[type, ...]) -> tuple[set[str], dict[tuple[str, str], int]]:
    """(files whose frames held the config, {(caller file:function, callee file:function): calls})."""
    files: set[str] = set()
    climbs: dict[tuple[str, str], int] = {}

    def holds_config(frame) -> bool:
        return any(isinstance(value, config_types) for value in frame.f_locals.values())

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = _project_file(frame.f_code)
        if callee is None:
            return
        if holds_config(frame):
            files.add(callee)
        caller = frame.f_back
        while caller is not None and _project_file(caller.f_code) is None:
            caller = caller.f_back  # through torch/stdlib frames (a hook, a DataLoader) to our code
        if caller is None:
            return
        caller_file = _project_file(caller.f_code)
        if caller_file == callee:
            return
        above, in_scope = set(), False
        outer = caller
        while outer is not None:
            in_scope = in_scope or holds_config(outer)
            name = _project_file(outer.f_code)
            if name is not None and outer is not caller:
                above.add(name)
            outer = outer.f_back
        if in_scope and callee in above:
            key = (f"{caller_file}:{caller.f_code.co_name}", f"{callee}:{frame.f_code.co_name}")
            climbs[key] = climbs.get(key, 0) + 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return files, climbs


def _tiny_data(folder: Path, rgb: bool) -> tuple[Path, Path]:
    import prepare_h5

    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (folder / split).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / split / f"{i}.png")
    scale, layout, color = ("4", "lr-hr", "rgb") if rgb else ("3", "upsampled", "y")
    train, val = folder / "train.h5", folder / "val.h5"
    prepare_h5.main(prepare_h5.parse_args(["--scale", scale, "--layout", layout, "--color", color,
                                           "--images", str(folder / "train"), "--eval-images", str(folder / "val"),
                                           "--patch-size", "24" if rgb else "21", "--stride", "24" if rgb else "21",
                                           "--output", str(train), "--eval-output", str(val)]))
    return train, val


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--script", choices=("train_srcnn", "train_srgan"), default="train_srcnn")
    args = p.parse_args(argv)
    script = importlib.import_module(args.script)
    from sr.training.config import RunConfig

    with tempfile.TemporaryDirectory() as tmp:
        train, val = _tiny_data(Path(tmp), rgb=args.script == "train_srgan")
        flags = ["--train", str(train), "--eval", str(val), "--out", str(Path(tmp) / "run"), "--device", "cpu",
                 "--epochs", "1", "--batch-size", "4"]
        flags += ["--phase", "pretrain", "--scale", "4"] if args.script == "train_srgan" else ["--arch", "fsrcnn"]
        files, climbs = follow(lambda: script.main(script.parse_args(flags)), (RunConfig,))
    print(f"{args.script}.py: cfg visits {len(files)} files; {len(climbs)} climbs back up")
    for name in sorted(files):
        print(f"  file  {name}")
    for (caller, callee), calls in sorted(climbs.items()):
        print(f"  climb {caller} -> {callee} ({calls} calls)")


if __name__ == "__main__":
    main()
