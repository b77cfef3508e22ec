"""The checkpoints in weights/ load, match their recipes, and score what the recipes say."""

import json

import numpy as np
import pytest
from PIL import Image

import eval as eval_script
from sr.inference import DEFAULT_WEIGHTS, Upscaler
from tests.conftest import ROOT

SHIPPED = sorted((ROOT / "weights").glob("*.pth"))


def recipe_of(path):
    return json.loads(path.with_suffix(".json").read_text())


def test_the_weights_the_issue_asks_for_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"fsrcnn_x2", "fsrcnn_x3", "fsrcnn_x4"} <= names
    assert DEFAULT_WEIGHTS in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_weights_describe_themselves(path):
    model = Upscaler.load(path, "cpu")
    recipe = recipe_of(path)
    assert path.stem == f"{path.stem.split('_x')[0]}_x{model.scale}"
    assert (recipe["arch"], recipe["scale"], recipe["color"]) == (model.arch, model.scale, model.color)
    assert recipe["runs"] and all(run["command"].startswith("python train_") for run in recipe["runs"])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_weights_score_their_recorded_set5_result(path, data_root):
    """showcase.py records each checkpoint's scores; eval.py must still give them (PSNR models beat bicubic)."""
    recipe = recipe_of(path)
    recorded = recipe.get("scores", {}).get("Set5")
    assert recorded, f"{path.stem}.json has no Set5 score: run experiments/showcase.py"
    summary = eval_script.main(eval_script.parse_args(["--weights", path.stem, "--dataset", str(data_root / "Set5"),
                                                       "--device", "cpu"]))
    assert summary["model_mean"]["psnr"] == pytest.approx(recorded["psnr"], abs=0.01)
    assert summary["model_mean"]["ssim"] == pytest.approx(recorded["ssim"], abs=1e-4)
    if "--phase gan" not in recipe["runs"][-1]["command"]:  # a GAN trades PSNR for texture
        assert summary["model_mean"]["psnr"] > summary["bicubic_mean"]["psnr"] + 0.5


def test_upscale_without_weights_uses_the_default_and_keeps_colour(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(24, 30, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    out = tmp_path / "big.png"
    eval_script.main(eval_script.parse_args(["--image", str(tmp_path / "photo.png"), "--upscale", "--output", str(out),
                                             "--device", "cpu"]))
    scale = recipe_of(ROOT / "weights" / f"{DEFAULT_WEIGHTS}.pth")["scale"]
    with Image.open(out) as result:
        assert result.mode == "RGB" and result.size == (30 * scale, 24 * scale)
        enlarged = np.asarray(result)
    assert np.abs(enlarged[..., 0].astype(int) - enlarged[..., 2]).mean() > 1  # colour, not grey
