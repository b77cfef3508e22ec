"""experiments/reproduce.py replays a recipe from prepare_h5.py to the export, with no machine's paths."""

import json
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import torch

from experiments import export_weights, reproduce
from sr.checkpoint import load_checkpoint
from sr.cli import run
from tests.conftest import ROOT

RETRAINED = ("fsrcnn_x2", "fsrcnn_x3", "fsrcnn_x4", "srcnn_x2", "srcnn_x3", "srcnn_x4")


def python(args: list[str], cwd: Path, data_root: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SR_DATA": str(data_root), "OMP_NUM_THREADS": "1"}
    script = args[0] if args[0] == "-m" else str(ROOT / args[0])
    subprocess.run([sys.executable, script, *args[1:]], cwd=cwd, env=env, check=True, capture_output=True)


def test_a_replayed_recipe_gives_the_same_weights(tmp_path, data_root, monkeypatch):
    # A two-run chain like the shipped FSRCNNs (x3, then x4 from it) on two T91 images, trained,
    # exported, then replayed from its recipe alone in another folder.
    first = tmp_path / "first"
    first.mkdir()
    for scale in (3, 4):
        python(["prepare_h5.py", "--scale", str(scale), "--layout", "lr-hr", "--max-images", "2"], first, data_root)
    common = ["--arch", "fsrcnn-paper", "--loss", "l1", "--epochs", "2", "--batch-size", "64", "--no-amp"]
    python(["train_srcnn.py", *common, "--scale", "3", "--out", "runs/a"], first, data_root)
    python(["train_srcnn.py", *common, "--scale", "4", "--init", "runs/a/best.pth", "--out", "runs/b"], first, data_root)
    python(["-m", "experiments.export_weights", "runs/b", "--name", "toy", "--out-dir", "weights"], first, data_root)
    recipe = json.loads((first / "weights" / "toy.json").read_text())
    assert [r["prepare"].split("--scale ")[1][0] for r in recipe["runs"]] == ["3", "4"]
    assert "T91-val" == recipe["runs"][-1]["validation"]["source_name"] and "T91-val" in recipe["chosen_by"]
    assert str(tmp_path) not in json.dumps(recipe)  # nothing of this machine's folders

    replay = tmp_path / "replay"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # bit-identical needs the same thread count (float sums' order)
    reproduce.main(reproduce.parse_args([str(first / "weights" / "toy.json"), "--out-dir", str(replay),
                                         "--data-root", str(data_root), "--keep-precision"]))
    original = load_checkpoint(first / "weights" / "toy.safetensors")["model"]
    replayed = load_checkpoint(replay / "weights" / "toy.safetensors")["model"]
    assert original.keys() == replayed.keys()
    assert all(torch.equal(original[k], replayed[k]) for k in original)
    assert [r["command"] for r in json.loads((replay / "weights" / "toy.json").read_text())["runs"]] == \
        [r["command"] for r in recipe["runs"]]


@pytest.mark.parametrize("name", RETRAINED)
def test_shipped_recipes_replay_with_relative_paths_only(name, capsys):
    reproduce.main(reproduce.parse_args([str(ROOT / "weights" / f"{name}.json"), "--dry-run", "--epochs-scale", "0.01"]))
    steps = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert steps[0][1] == "prepare_h5.py" and steps[-1][2] == "experiments.export_weights"
    for step in steps:
        assert not any(word.startswith("/") for word in step), step
        if "--epochs" in step:
            assert step[step.index("--epochs") + 1] == "1"
        assert "--amp" not in step and "--no-amp" not in step


def test_a_recipe_without_its_data_steps_is_refused_in_one_line(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"name": "old", "checkpoint": "runs/x/last.pth (epoch 1)",
                               "runs": [{"command": "python train_srcnn.py --arch srcnn"}]}))
    result = subprocess.run([sys.executable, "-m", "experiments.reproduce", str(old)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "do not record the prepare_h5.py call" in result.stderr and "Traceback" not in result.stderr


def test_a_run_started_from_shipped_weights_replays_from_the_run_that_made_them():
    from experiments.export_weights import starting_from
    assert (starting_from("python train_srcnn.py --init weights/a_x4.pth --seed 0", "weights/a_x4.pth", "runs/a/best.pth")
            == "python train_srcnn.py --init runs/a/best.pth --seed 0")
    # real_srresnet_x4 was fine-tuned from the shipped srresnet_x4; its replay starts from the run that made it.
    runs = json.loads((ROOT / "weights" / "real_srresnet_x4.json").read_text())["runs"]
    (i, tuned), = [(i, r) for i, r in enumerate(runs) if "started_from" in r]
    assert tuned["started_from"] == "weights/srresnet_x4.pth"
    assert f"--init {runs[i - 1]['run']}/last.pth " in tuned["command"]
    # And no shipped recipe's replay loads shipped weights: every start is an earlier run of the same recipe.
    for path in sorted((ROOT / "weights").glob("*.json")):
        earlier = []  # the run folders before this one in the recipe
        for run in json.loads(path.read_text())["runs"]:
            words = run["command"].split(" ")
            for flag in ("--init", "--generator"):
                if flag in words:
                    start = PurePosixPath(words[words.index(flag) + 1])
                    assert str(start.parent) in earlier, (path.name, flag, start)
            earlier.append(run["run"])


@pytest.mark.parametrize("field, command", [
    ("prepare", 'python -c "open(\'pwned\', \'w\').write(\'x\')"'),
    ("prepare", "python other.py --scale 3"),
    ("command", "bash -c 'touch pwned'"),
    ("export", "python -m http.server"),
    ("prepare", "python -X importtime prepare_h5.py"),
])
def test_a_recipe_runs_only_the_projects_own_entry_points(tmp_path, field, command):
    # Issue 21, row 9: a recipe whose prepare step was `python -c "..."` was run.
    recipe = {"name": "toy", "export": "python -m experiments.export_weights runs/a --name toy",
              "runs": [{"prepare": "python prepare_h5.py --scale 3 --layout lr-hr", "command": "python train_srcnn.py --arch srcnn",
                        "run": "runs/a"}]}
    (recipe if field == "export" else recipe["runs"][0])[field] = command
    (tmp_path / "toy.json").write_text(json.dumps(recipe))
    result = subprocess.run([sys.executable, "-m", "experiments.reproduce", str(tmp_path / "toy.json"), "--out-dir",
                             str(tmp_path / "replay")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "not one of the project's entry points" in result.stderr
    assert not (tmp_path / "replay").exists()  # refused before anything ran


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("hostile", ["prepare --output", "export --name", "recipe name", "run folder", "flag=value"])
def test_a_recipe_writes_nothing_outside_the_replay_folder(tmp_path, hostile):
    # Issue 32, row 1: allowed entry points with hostile paths replaced, deleted or made files outside it.
    victim = tmp_path / "victim.txt"
    victim.write_text("the replayer's own file")
    (tmp_path / "victim.pth").write_text("an export with a stale .pth beside it is removed")
    before = {p.name: _sha256(p) for p in tmp_path.iterdir()}
    recipe = {"name": "toy", "export": "python -m experiments.export_weights runs/a --name toy",
              "runs": [{"prepare": "python prepare_h5.py --scale 3 --images no-such-set", "run": "runs/a",
                        "command": "python train_srcnn.py --arch srcnn"}]}
    first = recipe["runs"][0]
    if hostile == "prepare --output":
        first["prepare"] += f" --output {victim}"
    elif hostile == "export --name":
        recipe["export"] = f"python -m experiments.export_weights runs/a --name {tmp_path / 'victim'}"
    elif hostile == "recipe name":
        recipe["name"] = "../../../escaped"
    elif hostile == "run folder":
        first["run"] = "runs/../../escaped"
    else:
        first["prepare"] += f" --output={victim}"
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    replay = tmp_path / "deep" / "er" / "replay"
    result = subprocess.run([sys.executable, "-m", "experiments.reproduce", str(tmp_path / "recipe.json"), "--out-dir",
                             str(replay)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "outside the replay folder" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "deep").exists()  # refused before anything ran
    assert {p.name: _sha256(p) for p in tmp_path.iterdir() if p.is_file() and p.name != "recipe.json"} == before


def test_export_weights_takes_a_name_not_a_path(tmp_path, capsys):
    victim = tmp_path / "victim.pth"
    victim.write_text("not an export")
    with pytest.raises(SystemExit) as exited:  # argparse's refusal, one line through sr.cli.ArgumentParser
        run(export_weights.main, lambda: [str(tmp_path / "run"), "--name", str(tmp_path / "victim")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert "--name" in err and "a name, not a path" in err
    assert victim.read_text() == "not an export"
