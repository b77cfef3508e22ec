import json

import pytest

import eval as eval_script
import sr.weights
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
