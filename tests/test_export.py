import hashlib
import json
from pathlib import Path

import pytest
import torch

import eval as eval_script
import sr.export
import sr.weights
from sr.checkpoint import load_checkpoint, save_checkpoint
from sr.errors import UserError
from sr.weights import shipped_file
from tests.conftest import ROOT
import train_srcnn
from experiments import export_weights


def test_an_exported_run_is_usable_by_name_and_carries_its_recipe(tmp_path, h5_x3, image_folders, monkeypatch):
    train, evaluation = h5_x3
    common = ["--train", str(train), "--eval", str(evaluation), "--device", "cpu", "--batch-size", "16", "--epochs", "1"]
    train_srcnn.main(train_srcnn.parse_args([*common, "--arch", "fsrcnn", "--out", str(tmp_path / "a")]))
    train_srcnn.main(train_srcnn.parse_args([*common, "--arch", "fsrcnn", "--out", str(tmp_path / "b"),
                                             "--init", str(tmp_path / "a" / "best.pth")]))
    export_weights.main([str(tmp_path / "b"), "--name", "fsrcnn_x3", "--out-dir", str(tmp_path / "weights")])
    recipe = json.loads((tmp_path / "weights" / "fsrcnn_x3.json").read_text())
    assert [r["run"] for r in recipe["runs"]] == [str(tmp_path / "a"), str(tmp_path / "b")]  # follows --init back
    assert recipe["runs"][1]["command"].startswith("python train_srcnn.py --arch fsrcnn --loss mse --scale 3")
    assert "--init" in recipe["runs"][1]["command"] and recipe["runs"][0]["data"]["stride"] == 9
    assert recipe["weights_dtype"] == "float32" and recipe["total_seconds"] > 0 and "CPU" in recipe["runs"][0]["machine"]
    monkeypatch.setattr(sr.weights, "WEIGHTS_DIR", tmp_path / "weights")
    summary = eval_script.main(eval_script.parse_args(["--weights", "fsrcnn_x3", "--dataset", str(image_folders["eval"]),
                                                       "--device", "cpu"]))
    best = recipe["runs"][1]["per_epoch"][0]["psnr"]
    assert summary["model_mean"]["psnr"] == pytest.approx(best, abs=1e-3)


def test_the_export_writes_safetensors_and_no_pickle(tmp_path, h5_x3):
    train, evaluation = h5_x3
    train_srcnn.main(train_srcnn.parse_args(["--train", str(train), "--eval", str(evaluation), "--device", "cpu", "--batch-size",
                                             "16", "--epochs", "1", "--arch", "fsrcnn", "--out", str(tmp_path / "a")]))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "toy_x3.pth").write_bytes(b"an earlier export")
    export_weights.main([str(tmp_path / "a"), "--name", "toy_x3", "--out-dir", str(tmp_path / "weights")])
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["toy_x3.json", "toy_x3.safetensors"]
    run = load_checkpoint(tmp_path / "a" / "best.pth")
    shipped = load_checkpoint(tmp_path / "weights" / "toy_x3.safetensors")
    assert shipped["name"] == "toy_x3" and "optimizer" not in shipped and "epoch" not in shipped
    assert all(torch.equal(shipped["model"][k], run["model"][k]) for k in run["model"])


def test_shipped_pth_files_convert_in_place_bit_for_bit(tmp_path, monkeypatch, capsys):
    """``python -m sr.export --shipped --format safetensors``: what the lead reruns after re-exporting .pth weights."""
    folder = tmp_path / "weights"
    folder.mkdir()
    originals = {}
    for name in ("fsrcnn_x3", "srresnet_x4"):
        state = load_checkpoint(shipped_file(name))
        del state["format"]
        save_checkpoint(folder / f"{name}.pth", state)  # the .pth as it was shipped before issue 23
        recipe = json.loads((ROOT / "weights" / f"{name}.json").read_text())
        recipe["scored_sha256"] = hashlib.sha256((folder / f"{name}.pth").read_bytes()).hexdigest()
        (folder / f"{name}.json").write_text(json.dumps(recipe))
        originals[name] = state
    monkeypatch.setattr(sr.weights, "WEIGHTS_DIR", folder)
    monkeypatch.setattr(sr.export, "WEIGHTS_DIR", folder)
    sr.export.main(sr.export.parse_args(["--shipped", "--format", "safetensors"]))
    printed = capsys.readouterr().out
    assert printed.count("bit for bit") == 2
    assert sorted(p.name for p in folder.iterdir()) == ["fsrcnn_x3.json", "fsrcnn_x3.safetensors",
                                                         "srresnet_x4.json", "srresnet_x4.safetensors"]
    for name, state in originals.items():
        converted = load_checkpoint(sr.weights.resolve_weights(name))
        assert converted["model"].keys() == state["model"].keys()
        assert all(torch.equal(converted["model"][k], v) and converted["model"][k].dtype == v.dtype for k, v in state["model"].items())
        recipe = json.loads((folder / f"{name}.json").read_text())  # same tensors, same scores: the digest follows
        assert recipe["scored_sha256"] == hashlib.sha256((folder / f"{name}.safetensors").read_bytes()).hexdigest()
    # A run's checkpoint elsewhere is written beside the caller, and kept.
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "best.pth", dict(originals["fsrcnn_x3"], epoch=3, optimizer={}))
    out = sr.export.main(sr.export.parse_args(["--weights", str(tmp_path / "best.pth"), "--format", "safetensors"]))
    assert out == Path("best.safetensors") and (tmp_path / "best.pth").is_file()
    assert "optimizer" not in load_checkpoint(out)


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_an_output_over_the_checkpoint_itself_is_refused_as_such(tmp_path, fmt):
    # Issue 32: a .pth given as its own --output was said to be "already safetensors"; as ONNX it was overwritten.
    weights = tmp_path / "w.pth"
    save_checkpoint(weights, {k: v for k, v in load_checkpoint(shipped_file("fsrcnn_x3")).items() if k != "format"})
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    with pytest.raises(UserError, match=r"--output .*w.pth is the checkpoint it exports; write the .* file elsewhere"):
        sr.export.main(sr.export.parse_args(["--weights", str(weights), "--format", fmt, "--output", str(weights)]))
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == before
