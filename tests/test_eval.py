import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
from sr.checkpoint import save_checkpoint
from sr.errors import UserError
from sr.models import create_model
from tests.conftest import ROOT, smooth_image


def _checkpoint(path, arch, scale, color=None):
    torch.manual_seed(0)
    model, kwargs = create_model(arch, scale, color)
    from sr.models import MODELS

    spec = MODELS[arch]
    save_checkpoint(path, dict(arch=arch, model_kwargs=kwargs, scale=scale, color=color or spec.color,
                               layout=spec.layout, model=model.state_dict()))
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(smooth_image(np.random.default_rng(5), 62, 50)).save(path)
    return path


def _eval(*argv):
    return eval_script.main(eval_script.parse_args([*map(str, argv), "--device", "cpu"]))


def test_image_mode_writes_results_and_json(tmp_path, photo):
    weights = _checkpoint(tmp_path / "w.pth", "srcnn", 3)
    summary = _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path / "out", "--json", tmp_path / "s.json")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["photo_bicubic_x3.png", "photo_compare_x3.png", "photo_srcnn_x3.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "photo_srcnn_x3.png")).shape == (60, 48, 3)  # cropped to x3
    doc = json.loads((tmp_path / "s.json").read_text())
    assert {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "images"} <= set(doc)
    assert doc["psnr"] == pytest.approx(summary["model_mean"]["psnr"])
    assert doc["bicubic_psnr"] == pytest.approx(summary["bicubic_mean"]["psnr"])
    assert doc["images"][0]["image"] == "photo"


def test_bicubic_json_reports_bicubic_as_the_main_score(tmp_path, photo):
    _eval("--bicubic", "--scale", "2", "--image", photo, "--out-dir", tmp_path, "--json", tmp_path / "b.json")
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["psnr"] == doc["bicubic_psnr"] and doc["model"] == "bicubic"


def test_upscale_gives_a_full_colour_image_of_scale_times_the_size(tmp_path, photo):
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn-paper", 3)
    _eval("--weights", weights, "--image", photo, "--upscale", "--output", tmp_path / "big.png")
    big = np.asarray(Image.open(tmp_path / "big.png"))
    assert big.shape == (186, 150, 3)
    assert np.abs(big[..., 0].astype(int) - big[..., 2]).mean() > 5  # colour, not grey: chroma from bicubic


def test_rgb_models_are_scored_on_y_and_on_rgb(tmp_path, photo):
    weights = _checkpoint(tmp_path / "g.pth", "srresnet-noin", 2)
    summary = _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path)
    assert {"psnr", "ssim", "psnr_rgb", "ssim_rgb"} <= set(summary["model_mean"])


def test_dataset_mode_prints_a_table(tmp_path, image_folders, capsys):
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn", 3)
    summary = _eval("--weights", weights, "--dataset", image_folders["eval"])
    out = capsys.readouterr().out
    assert "eval x3: PSNR (dB) / SSIM on Y, border 3 px cropped" in out
    assert out.count("\n") == 2 + 3 + 1  # title, header, three images, mean
    assert len(summary["rows"]) == 3


def test_bad_requests_are_refused(tmp_path, photo):
    weights = _checkpoint(tmp_path / "w.pth", "srcnn", 3)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(tiny)
    with pytest.raises(UserError, match="too small to evaluate at x3"):
        _eval("--weights", weights, "--image", tiny)
    _eval("--weights", weights, "--image", tiny, "--upscale", "--output", tmp_path / "t.png")  # enlarging is fine
    with pytest.raises(UserError, match="--scale 2 contradicts the checkpoint, which is x3"):
        _eval("--weights", weights, "--image", photo, "--scale", "2")
    with pytest.raises(UserError, match="--bicubic needs --scale"):
        _eval("--bicubic", "--image", photo)
    with pytest.raises(UserError, match="no such checkpoint file or shipped weights"):
        _eval("--weights", tmp_path / "nope.pth", "--image", photo)
    with pytest.raises(UserError, match="no such file"):
        _eval("--weights", weights, "--image", tmp_path / "nope.png")
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="cannot write image"):
        _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path / "afile" / "out")
    (tmp_path / "plain.pth").write_bytes(b"not torch")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        _eval("--weights", tmp_path / "plain.pth", "--image", photo)


def test_cli_failures_are_one_line_without_a_traceback(tmp_path, photo):
    (tmp_path / "notes.txt").write_text("hello")
    cases = [
        (["--weights", str(tmp_path / "missing.pth"), "--image", str(photo)], "missing.pth: no such checkpoint"),
        (["--bicubic", "--scale", "3", "--image", str(tmp_path / "notes.txt")], "not an image file"),
        (["--bicubic", "--scale", "3", "--dataset", str(tmp_path / "nowhere")], "nowhere: no such file or folder"),
        (["--bicubic", "--scale", "3", "--dataset", "Urban100", "--data-root", str(tmp_path)], "dataset 'Urban100' not found"),
    ]
    for argv, message in cases:
        result = subprocess.run([sys.executable, "eval.py", *argv], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
