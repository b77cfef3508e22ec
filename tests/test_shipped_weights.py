"""The checkpoints in weights/ load, match their recipes, and score what the recipes say.

Every shipped file must be the file whose scores its recipe records (the recipe's ``scored_sha256``),
and eval.py re-scores one model of each architecture on Set5 here. Re-scoring every model (Set5, and
Set14 for the Y models: about three minutes on 2 cores, more with each model shipped) is marked
``benchmark``, which pytest.ini deselects: ``python -m bench.tables shipped`` runs it and prints each row.
"""

import hashlib
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
from sr.color import rgb_to_y
from sr.upscaler import Upscaler
from sr.weights import DEFAULT_WEIGHTS, PHOTO_MAX_QUALITY, PHOTO_WEIGHTS
from sr.protocol import degrade, ground_truth
from sr.checkpoint import load_checkpoint
from sr.weights import shipped_file, shipped_names
from tests.conftest import BICUBIC, ROOT

SHIPPED = [shipped_file(name) for name in shipped_names()]


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


# Set5 for every model; Set14 as well for the Y models whose paper targets are on both (the SRCNN family).
SCORED = [(p, "Set5") for p in SHIPPED] + [(p, "Set14") for p in SHIPPED if recipe_of(p)["color"] == "y"]
# One model of each architecture re-scored in the suite: the three layouts and colours eval.py runs
# (upsampled Y, LR-HR Y, LR-HR RGB) at each scale; every other (model, set) is a benchmark row.
RESCORED = {"srcnn": "srcnn_x3", "fsrcnn-paper": "fsrcnn_x2", "fsrcnn-deep": "real_fsrcnn_x4", "srresnet-noin": "srresnet_x4"}


def beats_bicubic(recipe) -> bool:
    """Whether the model is held to beating bicubic by 0.5 dB: a GAN trades PSNR for texture."""
    return "--phase gan" not in recipe["runs"][-1]["command"]


def scored_row(path, dataset):
    """A row of SCORED as a test case: in the suite for the RESCORED models on Set5, else a benchmark."""
    in_the_suite = dataset == "Set5" and path.stem in RESCORED.values()
    return pytest.param(path, dataset, marks=() if in_the_suite else pytest.mark.benchmark)


@pytest.mark.parametrize("path, dataset", [scored_row(*row) for row in SCORED], ids=lambda v: getattr(v, "stem", v))
def test_shipped_weights_score_their_recorded_result(path, dataset, data_root, record_property):
    """showcase.py records each checkpoint's scores; eval.py, run on the weights now, must still give them
    (PSNR models beat bicubic). The suite runs the RESCORED models on Set5; ``python -m bench.tables``
    every row (see the module docstring)."""
    recipe = recipe_of(path)
    recorded = recipe.get("scores", {}).get(dataset)
    assert recorded, f"{path.stem}.json has no {dataset} score: run experiments/showcase.py"
    summary = eval_script.main(eval_script.parse_args(["--weights", path.stem, "--dataset", str(data_root / dataset),
                                                       "--device", "cpu"]))
    measured = summary["model_mean"]
    record_property("measured", f"{measured['psnr']:.3f} / {measured['ssim']:.5f}")
    record_property("expected", f"{recorded['psnr']:.3f} / {recorded['ssim']:.5f}")
    assert measured["psnr"] == pytest.approx(recorded["psnr"], abs=0.01)
    assert measured["ssim"] == pytest.approx(recorded["ssim"], abs=1e-4)
    if beats_bicubic(recipe):
        assert measured["psnr"] > summary["bicubic_mean"]["psnr"] + 0.5


def test_one_model_of_each_shipped_architecture_is_rescored_in_the_suite():
    shipped = {p.stem: recipe_of(p)["arch"] for p in SHIPPED}
    assert set(shipped.values()) == set(RESCORED), "add the new architecture's cheapest model to RESCORED"
    assert all(shipped.get(name) == arch for arch, name in RESCORED.items())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_file_is_the_one_its_recipe_scored(path):
    """The recorded scores are this file's: its bytes are the ones showcase.py scored (so re-scoring one
    model of its architecture, above, vouches for it), and a PSNR model's recorded scores beat BasicSR's
    bicubic numbers by 0.5 dB on each set of SCORED."""
    recipe = recipe_of(path)
    assert "scored_sha256" in recipe, f"{path.stem}.json records no scores: run experiments/showcase.py"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == recipe["scored_sha256"], \
        f"{path.name} is not the file its recipe's scores are for: run experiments/showcase.py"
    sets = [dataset for p, dataset in SCORED if p == path]
    assert all(dataset in recipe["scores"] for dataset in sets), f"{path.stem}.json lacks a score on {sets}"
    if beats_bicubic(recipe):
        for dataset in sets:
            assert recipe["scores"][dataset]["psnr"] > BICUBIC[dataset, recipe["scale"]][0] + 0.5, dataset


def test_every_shipped_model_is_safetensors_and_no_pickle_ships_beside_it():
    """Issue 23: weights/NAME.safetensors in place of weights/NAME.pth, the recipe beside it."""
    assert SHIPPED and all(p.suffix == ".safetensors" for p in SHIPPED)
    assert not list((ROOT / "weights").glob("*.pth"))
    assert all(p.with_suffix(".json").is_file() for p in SHIPPED)


def marked_block(doc: str, marker: str) -> str:
    """The python block between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in ``doc`` (relative to the root)."""
    text = (ROOT / doc).read_text()
    block = re.search(rf"<!-- {marker}:start -->\s*```python\n(.*?)```\s*<!-- {marker}:end -->", text, re.S)
    assert block, f"{doc} lost its {marker} snippet (<!-- {marker}:start --> ... <!-- {marker}:end -->)"
    return block.group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, data_root, capsys):
    """The README's example (load, enlarge, score), run verbatim in a folder whose data/ is the data root."""
    code = marked_block("README.md", "example")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(data_root, target_is_directory=True)
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    exec(compile(code, "README.md (example)", "exec"), {})  # noqa: S102 (the README's own text)
    with Image.open(tmp_path / "photo_x3.png") as big:
        assert big.size == (72, 60) and big.mode == "RGB"
    expected = eval_script.main(eval_script.parse_args(["--weights", "fsrcnn_x3", "--image",
                                                        str(data_root / "Set5" / "butterfly.png"), "--device", "cpu"]))
    assert f"'psnr': {expected['model_mean']['psnr']!r}" in capsys.readouterr().out


def test_the_loader_in_docs_runs_as_written(monkeypatch):
    """docs/models.md's plain-PyTorch loader (between its 'loader' markers), run verbatim from the repository root."""
    code = marked_block("docs/models.md", "loader")
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(code, "docs/models.md (loader)", "exec"), scope)  # noqa: S102 (the document's own text)
    state = load_checkpoint(ROOT / scope["path"])
    assert scope["facts"] == {k: state[k] for k in state if k != "model"}
    model, lr = scope["model"], scope["lr"]
    assert not model.training and scope["sr"].shape[-1] == lr.shape[-1] * state["scale"]
    with torch.no_grad():
        expected = Upscaler.load(ROOT / scope["path"], "cpu", amp=False).net(lr)
    assert torch.allclose(scope["sr"], expected, atol=1e-5)


def test_upscale_without_weights_uses_the_default_and_keeps_colour(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(24, 30, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    out = tmp_path / "big.png"
    eval_script.main(eval_script.parse_args(["--image", str(tmp_path / "photo.png"), "--upscale", "--output", str(out),
                                             "--device", "cpu"]))
    scale = recipe_of(ROOT / "weights" / f"{DEFAULT_WEIGHTS}.json")["scale"]
    with Image.open(out) as result:
        assert result.mode == "RGB" and result.size == (30 * scale, 24 * scale)
        enlarged = np.asarray(result)
    assert np.abs(enlarged[..., 0].astype(int) - enlarged[..., 2]).mean() > 1  # colour, not grey


# --- the real-photo models (issue 12) -------------------------------------------------------

PHOTO_MODELS = [p for p in SHIPPED if p.stem.startswith("real_")]
CLEAN_TWIN = {"real_srresnet_x4": "srresnet_x4", "real_fsrcnn_x4": "fsrcnn_x4"}  # same model trained on clean LR


def grid_blockiness(rgb: np.ndarray, period: int) -> float:
    """Mean |step| between neighbouring pixels of Y across the lines of a ``period``-pixel grid
    (where an LR JPEG's 8x8 block edges land once enlarged) over that elsewhere; 1: no grid."""
    y = rgb_to_y(rgb.astype(np.float64))
    steps = np.concatenate([np.abs(np.diff(y, axis=1)).mean(axis=0), np.abs(np.diff(y, axis=0)).mean(axis=1)])
    position = np.concatenate([np.arange(y.shape[1] - 1), np.arange(y.shape[0] - 1)]) % period
    return float(steps[position == period - 1].mean() / steps[position != period - 1].mean())


def test_every_photo_model_has_a_clean_twin():
    assert {p.stem for p in PHOTO_MODELS} <= set(CLEAN_TWIN) and "real_srresnet_x4" in {p.stem for p in PHOTO_MODELS}


@pytest.mark.parametrize("path", PHOTO_MODELS, ids=lambda p: p.stem)
def test_photo_models_draw_fewer_block_edges_and_score_higher_on_jpeg_lr(path, data_root):
    # The issue's complaint: a model trained on clean LR turns a JPEG's 8x8 block edges into
    # lines. A test image only illustrates here; nothing is chosen on it.
    hr = ground_truth(data_root / "BSDS100" / "69015.png", 4)
    lr = degrade(hr, 4, jpeg=50)
    photo = Upscaler.load(path, "cpu", amp=False).score(lr, hr)
    clean = Upscaler.load(CLEAN_TWIN[path.stem], "cpu", amp=False).score(lr, hr)
    bicubic = Upscaler.bicubic(4).score(lr, hr)
    assert grid_blockiness(photo.image, 32) < grid_blockiness(clean.image, 32) - 0.1
    assert grid_blockiness(photo.image, 32) < grid_blockiness(bicubic.image, 32)  # no more blocks than plain bicubic
    assert photo.scores["psnr"] > clean.scores["psnr"] + 0.1


def test_without_weights_ordinary_jpegs_get_the_photo_model_and_the_rest_the_clean_one(tmp_path, capsys):
    rng = np.random.default_rng(4)
    image = Image.fromarray(rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8))
    image.save(tmp_path / "photo.jpg", quality=PHOTO_MAX_QUALITY)
    image.save(tmp_path / "fine.jpg", quality=PHOTO_MAX_QUALITY + 1)
    image.save(tmp_path / "clean.png")
    image.save(tmp_path / "disguised.png", format="JPEG", quality=60)  # the content decides, not the name
    out = tmp_path / "out"
    eval_script.main(eval_script.parse_args(["--upscale", str(tmp_path), "--out-dir", str(out), "--device", "cpu"]))
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([
        f"photo_{PHOTO_WEIGHTS}.jpg", f"disguised_{PHOTO_WEIGHTS}.png", f"fine_{DEFAULT_WEIGHTS}.jpg", f"clean_{DEFAULT_WEIGHTS}.png"])
    # The photo model runs for both; each file's quality sets its blend toward the heavy anchor, one line each.
    photo_lines = [line for line in printed.splitlines() if f"{PHOTO_WEIGHTS}.safetensors" in line]
    assert sum(int(re.search(r"; (\d+) images?, x", line).group(1)) for line in photo_lines) == 2
    assert any(f"JPEG q60: quality {PHOTO_MAX_QUALITY} or lower" in line for line in photo_lines)  # what was read, and why
    assert all("0.8 of its detail over bicubic kept" in line for line in photo_lines)  # and the pull toward bicubic
    eval_script.main(eval_script.parse_args(["--upscale", str(tmp_path / "photo.jpg"), "--out-dir", str(out / "as_is"),
                                             "--device", "cpu", "--detail", "1"]))
    assert "detail" not in capsys.readouterr().out  # --detail 1: the model's output as it is
    # --weights picks one model for every input, JPEG or not.
    eval_script.main(eval_script.parse_args(["--upscale", str(tmp_path / "photo.jpg"), str(tmp_path / "clean.png"),
                                             "--out-dir", str(out / "one"), "--device", "cpu", "--weights", "fsrcnn_x4"]))
    assert sorted(p.name for p in (out / "one").iterdir()) == ["clean_fsrcnn_x4.png", "photo_fsrcnn_x4.jpg"]
    assert "default for such inputs" not in capsys.readouterr().out
