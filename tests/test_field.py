"""The field benchmark's degradations (sr.data.field) and eval.py --degrade."""

import io
import json

import numpy as np
import pytest
from PIL import Image

import eval as eval_script
from conftest import smooth_image
from sr.data.degradation import downscale
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, RESAVE_SHIFT, check_kind, compress, field_degrade, field_suffix, save_field_lr, shifted_compress


@pytest.fixture(scope="module")
def hr():
    rng = np.random.default_rng(1)
    img = smooth_image(rng, 96, 128).astype(np.float64) + rng.uniform(-30, 30, (96, 128, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("kind", [*FIELD_KINDS, *HEAVY_KINDS, "webp:50"])
def test_each_kind_decodes_from_its_file_to_the_pixels_it_scores(tmp_path, hr, kind):
    lr = field_degrade(hr, 4, kind)
    assert lr.shape == (24, 32, 3) and lr.dtype == np.uint8
    assert np.array_equal(field_degrade(hr, 4, kind), lr)  # deterministic, the noise included
    path = save_field_lr(hr, 4, kind, tmp_path / "x")
    assert path.suffix == field_suffix(kind)
    with Image.open(path) as im:
        assert im.format == {".jpg": "JPEG", ".webp": "WEBP", ".png": "PNG"}[path.suffix]
        assert np.array_equal(np.array(im.convert("RGB")), lr)
    clean = downscale(hr, 4)
    assert np.array_equal(lr, clean) == (kind == "clean")


def test_resaved_is_two_jpegs_with_grids_a_pixel_apart(hr):
    lr = downscale(hr, 4)
    padded = np.pad(lr, ((1, 0), (1, 0), (0, 0)), mode="reflect")
    first = io.BytesIO()
    Image.fromarray(padded).save(first, format="JPEG", quality=90)
    shifted = np.array(Image.open(first))[1:, 1:]
    second = io.BytesIO()
    Image.fromarray(shifted).save(second, format="JPEG", quality=70)
    assert np.array_equal(field_degrade(hr, 4, "resaved"), np.array(Image.open(second)))


def test_kind_names_are_checked():
    assert check_kind("webp:100") == "webp:100"
    for bad in ("webp", "jpeg:0", "jpeg:101", "png:5", "blurry"):
        with pytest.raises(ValueError, match="unknown degradation"):
            check_kind(bad)


def test_eval_degrade_scores_the_degraded_lr_and_records_it(tmp_path, image_folders):
    out = tmp_path / "s.json"
    summary = eval_script.main(eval_script.parse_args(
        ["--bicubic", "--scale", "3", "--dataset", str(image_folders["eval"]), "--degrade", "webp:30", "--json", str(out)]))
    clean = eval_script.main(eval_script.parse_args(["--bicubic", "--scale", "3", "--dataset", str(image_folders["eval"])]))
    assert summary["bicubic_mean"]["psnr"] < clean["bicubic_mean"]["psnr"]
    assert json.loads(out.read_text())["degrade"] == "webp:30"
    with pytest.raises(SystemExit):
        eval_script.parse_args(["--bicubic", "--scale", "3", "--dataset", "x", "--degrade", "gif:3"])


def test_denoise_blends_the_clean_and_the_photo_model_weight_by_weight(tmp_path):
    import torch

    from sr.checkpoint import load_checkpoint
    from sr.weights import DEFAULT_WEIGHTS, PHOTO_WEIGHTS, blended_checkpoint, resolve_weights

    clean, photo = (load_checkpoint(resolve_weights(n)) for n in (DEFAULT_WEIGHTS, PHOTO_WEIGHTS))
    half = blended_checkpoint(clean, photo, 0.5)["model"]
    for name, value in clean["model"].items():
        assert torch.allclose(half[name], (value + photo["model"][name]) / 2, atol=1e-7), name
    assert all(torch.equal(blended_checkpoint(clean, photo, 0.0)["model"][k], v) for k, v in clean["model"].items())
    # Through eval.py: strength 0 enlarges exactly as the clean model does.
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    for flags, folder in ((["--denoise", "0"], "blend"), (["--weights", DEFAULT_WEIGHTS], "clean")):
        eval_script.main(eval_script.parse_args(["--upscale", str(tmp_path / "a.png"), "--out-dir", str(tmp_path / folder),
                                                 "--device", "cpu", "--no-amp", *flags]))
    (blend,), (plain,) = (list((tmp_path / f).iterdir()) for f in ("blend", "clean"))
    assert np.array_equal(np.array(Image.open(blend)), np.array(Image.open(plain)))


def test_two_saves_are_the_first_on_a_shifted_grid_then_the_second(hr):
    lr = downscale(hr, 4)
    first = shifted_compress(lr, "jpeg", 50, RESAVE_SHIFT, RESAVE_SHIFT)
    assert np.array_equal(field_degrade(hr, 4, "jpeg:50+webp:70"), compress(first, "webp", 70))
    assert field_suffix("jpeg:50+webp:70") == ".webp" and field_suffix("webp:50+jpeg:80") == ".jpg"
    for bad in ("jpeg:50+", "jpeg:50+webp:70+jpeg:90", "clean+jpeg:50"):
        with pytest.raises(ValueError):
            check_kind(bad)
