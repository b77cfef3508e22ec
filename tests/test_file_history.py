"""The default picker reads a file's history from the file: JPEG tables, WebP chunks, block grids in lossless pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from sr.data.degradation import downscale, mod_crop
from sr.data.field import field_degrade, save_field_lr
from sr.data.h5 import held_out
from sr.data.images import list_images, load_rgb
from sr.file_history import blockiness, read_history, webp_is_lossy
from sr.upscaler import Upscaler
from sr.weights import DEFAULT_WEIGHTS, HEAVY_ANCHORS, PHOTO_WEIGHTS, WEIGHTS_DIR, Choice, default_weights, load_choice, named_choice


@pytest.fixture(scope="module")
def photo_hr(data_root):
    """A held-out BSDS200 photo (validation, never test), mod-cropped for x4."""
    return mod_crop(load_rgb(held_out(list_images(data_root / "BSDS200"), 10)[1]), 4)


def test_lossy_and_lossless_webp_are_told_apart_by_their_chunks(tmp_path, photo_hr):
    lr = downscale(photo_hr, 4)
    Image.fromarray(lr).save(tmp_path / "lossy.jpg", format="WEBP", quality=75)  # a WebP under a .jpg name
    Image.fromarray(lr).save(tmp_path / "lossless.webp", format="WEBP", lossless=True)
    Image.fromarray(lr).save(tmp_path / "with_alpha.webp", format="WEBP", quality=75, exif=b"Exif\0\0")
    assert webp_is_lossy(tmp_path / "lossy.jpg") is True
    assert webp_is_lossy(tmp_path / "lossless.webp") is False
    assert webp_is_lossy(tmp_path / "with_alpha.webp") is True  # VP8X: metadata chunks before the bitstream
    assert default_weights(tmp_path / "lossy.jpg").weights == PHOTO_WEIGHTS
    assert default_weights(tmp_path / "lossy.jpg").reason.startswith("lossy WebP q")
    assert default_weights(tmp_path / "lossless.webp")[0] == DEFAULT_WEIGHTS


@pytest.mark.parametrize("quality, expected", [(50, PHOTO_WEIGHTS), (90, PHOTO_WEIGHTS), (95, DEFAULT_WEIGHTS)])
def test_jpegs_go_by_their_quality(tmp_path, photo_hr, quality, expected):
    Image.fromarray(downscale(photo_hr, 4)).save(tmp_path / "x.png.jpg", quality=quality)
    assert default_weights(tmp_path / "x.png.jpg")[0] == expected
    assert read_history(tmp_path / "x.png.jpg").quality == quality


def test_a_png_screenshot_of_a_jpeg_goes_to_the_photo_model_and_a_clean_png_does_not(tmp_path, photo_hr):
    Image.fromarray(field_degrade(photo_hr, 4, "resaved")).save(tmp_path / "screenshot.png")
    Image.fromarray(field_degrade(photo_hr, 4, "webp:75")).save(tmp_path / "webp_screenshot.png")
    save_field_lr(photo_hr, 4, "clean", tmp_path / "clean")
    choice = default_weights(tmp_path / "screenshot.png")
    assert choice.weights == PHOTO_WEIGHTS and "compression blocks" in choice.reason
    assert default_weights(tmp_path / "webp_screenshot.png")[0] == PHOTO_WEIGHTS
    assert default_weights(tmp_path / "clean.png") == Choice(DEFAULT_WEIGHTS, "png without compression damage")


def test_blockiness_sees_a_grid_of_block_offsets_and_not_noise():
    rng = np.random.default_rng(0)
    flat = rng.normal(128, 2, (96, 96))
    blocks = np.kron(rng.normal(0, 3, (12, 12)), np.ones((8, 8)))
    small_blocks = np.kron(rng.normal(0, 3, (24, 24)), np.ones((4, 4)))
    assert blockiness(flat) < 0.04
    assert blockiness(flat + blocks) > 0.3
    assert blockiness(flat + small_blocks) > 0.3  # a JPEG halved after saving: a 4-px grid


def test_an_unreadable_file_is_not_measured_but_left_to_the_reader(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert default_weights(tmp_path / "broken.png")[0] == DEFAULT_WEIGHTS


@pytest.mark.parametrize("quality", [30, 40, 60, 85])
def test_a_lossy_webp_tells_its_quality_from_its_quantiser_indices(tmp_path, photo_hr, quality):
    Image.fromarray(downscale(photo_hr, 4)).save(tmp_path / "x.webp", quality=quality)
    read = read_history(tmp_path / "x.webp").quality
    assert read is not None and abs(read - quality) <= 6, read
    # A lossless WebP has no quantiser: no quality is made up for it.
    Image.fromarray(downscale(photo_hr, 4)).save(tmp_path / "lossless.webp", lossless=True)
    assert read_history(tmp_path / "lossless.webp").quality is None


@pytest.mark.parametrize("crop", [(0, 0), (3, 5)])
def test_a_png_of_a_q40_jpeg_tells_the_jpeg_quality_from_its_pixels(tmp_path, photo_hr, crop):
    Image.fromarray(downscale(photo_hr, 4)).save(tmp_path / "x.jpg", quality=40)
    with Image.open(tmp_path / "x.jpg") as jpeg:  # a screenshot of it, cropped off the block grid or not
        jpeg.crop((crop[1], crop[0], jpeg.width, jpeg.height)).save(tmp_path / "shot.png")
    history = read_history(tmp_path / "shot.png")
    assert history.container == "png" and not history.lossy
    assert history.quality == 40, history


@pytest.mark.parametrize("first, shift, last, earlier", [(40, (4, 4), 80, 40), (60, (3, 6), 90, 60), (40, (0, 0), 80, None),
                                                       (95, (4, 4), 80, None)])
def test_a_jpeg_saved_again_on_a_shifted_grid_tells_its_earlier_quality(tmp_path, photo_hr, first, shift, last, earlier):
    """A q40 JPEG cropped and saved again at q80 (or a q60 one at q90) is read as the heavier file it
    is; the same grid, or an earlier save milder than the last, leaves today's reading: the last save's."""
    lr = downscale(photo_hr, 4)
    dy, dx = shift
    padded = np.pad(lr, ((dy, 0), (dx, 0), (0, 0)), mode="reflect")  # the first save's grid (dy, dx) px off
    Image.fromarray(padded).save(tmp_path / "first.jpg", quality=first)
    with Image.open(tmp_path / "first.jpg") as jpeg:
        jpeg.crop((dx, dy, jpeg.width, jpeg.height)).save(tmp_path / "again.jpg", quality=last)
    history = read_history(tmp_path / "again.jpg")
    assert (history.quality, history.earlier, history.heaviest) == (last, earlier, earlier or last), history
    assert ("over an earlier" in history.describe()) == bool(earlier)
    Image.fromarray(lr).save(tmp_path / "once.jpg", quality=80)
    assert read_history(tmp_path / "once.jpg").earlier is None


def test_a_jpeg_with_an_earlier_heavy_save_is_blended_by_it(tmp_path, photo_hr, anchored):
    lr = downscale(photo_hr, 4)
    Image.fromarray(np.pad(lr, ((4, 0), (4, 0), (0, 0)), mode="reflect")).save(tmp_path / "first.jpg", quality=40)
    with Image.open(tmp_path / "first.jpg") as jpeg:
        jpeg.crop((4, 4, jpeg.width, jpeg.height)).save(tmp_path / "again.jpg", quality=80)
    Image.fromarray(lr).save(tmp_path / "q40.jpg", quality=40)
    Image.fromarray(lr).save(tmp_path / "q80.jpg", quality=80)
    again = default_weights(tmp_path / "again.jpg", anchored)
    assert again.heavy == default_weights(tmp_path / "q40.jpg", anchored).heavy > default_weights(tmp_path / "q80.jpg", anchored).heavy
    assert again.reason.startswith("JPEG q80 over an earlier q40 on a shifted grid")


def test_a_clean_png_has_no_quality_to_read(tmp_path, photo_hr):
    save_field_lr(photo_hr, 4, "clean", tmp_path / "clean")
    assert read_history(tmp_path / "clean.png").quality is None


@pytest.fixture()
def anchored(tmp_path):
    """A weights folder with the photo model and a heavy anchor for it (a copy: what blends is tested
    here, not what the anchor learned)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in (PHOTO_WEIGHTS, DEFAULT_WEIGHTS):
        (folder / f"{name}.safetensors").write_bytes((WEIGHTS_DIR / f"{name}.safetensors").read_bytes())
    (folder / f"{HEAVY_ANCHORS[PHOTO_WEIGHTS].name}.safetensors").write_bytes((WEIGHTS_DIR / f"{PHOTO_WEIGHTS}.safetensors").read_bytes())
    return folder


@pytest.mark.parametrize("quality", [25, 35, 45, 60, 80])
def test_heavily_compressed_files_are_blended_toward_the_heavy_anchor_by_their_quality(tmp_path, photo_hr, anchored,
                                                                                        quality):
    anchor = HEAVY_ANCHORS[PHOTO_WEIGHTS]
    strength = min(1.0, max(0.0, (anchor.start - quality) / (anchor.start - anchor.full)))  # the ramp, as documented
    lr = Image.fromarray(downscale(photo_hr, 4))
    lr.save(tmp_path / "x.jpg", quality=quality)
    lr.save(tmp_path / "x.webp", quality=quality)
    for name in ("x.jpg", "x.webp"):
        choice = default_weights(tmp_path / name, anchored)
        assert choice.weights == PHOTO_WEIGHTS and abs(choice.heavy - strength) <= 0.25, (name, choice)
        assert ("heavy compression" in choice.reason) == bool(choice.heavy)
    # --heavy S given by the user wins over the file.
    assert default_weights(tmp_path / "x.jpg", anchored, heavy=0.0).heavy == 0.0
    assert default_weights(tmp_path / "x.jpg", anchored, heavy=0.7).heavy == 0.7


def test_no_anchor_no_blend_and_a_blend_loads_as_the_photo_model(tmp_path, photo_hr, anchored):
    Image.fromarray(downscale(photo_hr, 4)).save(tmp_path / "x.jpg", quality=30)
    # Without the anchor shipped beside it the photo model runs alone, as before there was one.
    (anchored / f"{HEAVY_ANCHORS[PHOTO_WEIGHTS].name}.safetensors").rename(tmp_path / "away.safetensors")
    assert default_weights(tmp_path / "x.jpg", anchored).heavy == 0.0
    (tmp_path / "away.safetensors").rename(anchored / f"{HEAVY_ANCHORS[PHOTO_WEIGHTS].name}.safetensors")
    choice = default_weights(tmp_path / "x.jpg", anchored, heavy=1.0)
    anchor = HEAVY_ANCHORS[PHOTO_WEIGHTS]
    assert choice.label == f"{PHOTO_WEIGHTS} +heavy 1 detail {anchor.detail:g}" + (f" passes {anchor.passes}" if anchor.passes != 1 else "")
    state = load_choice(choice, anchored)  # the anchor here is a copy: the blend is the photo model itself
    alone = load_choice(Choice(PHOTO_WEIGHTS, ""), anchored)
    assert state["name"] == PHOTO_WEIGHTS
    assert all(torch.allclose(state["model"][k].float(), alone["model"][k].float()) for k in alone["model"])
    # --weights NAME of a model with an anchor follows the file too; one without runs as it is.
    assert named_choice(PHOTO_WEIGHTS, tmp_path / "x.jpg", anchored).heavy == default_weights(tmp_path / "x.jpg", anchored).heavy > 0
    assert named_choice("fsrcnn_x4", tmp_path / "x.jpg", anchored) == Choice("fsrcnn_x4", "given by --weights")


def test_a_lossy_file_keeps_the_photo_models_detail_share_and_a_clean_one_all(tmp_path, photo_hr, anchored):
    """The pull toward bicubic (Anchor.detail) applies to what the file shows was compressed, never
    to a clean file, and --detail given by the user wins."""
    lr = Image.fromarray(downscale(photo_hr, 4))
    lr.save(tmp_path / "x.jpg", quality=60)
    lr.save(tmp_path / "x.png")
    detail = HEAVY_ANCHORS[PHOTO_WEIGHTS].detail
    assert detail < 1  # chosen on validation (experiments.detail_rule): SRResNet keeps 0.8
    lossy = default_weights(tmp_path / "x.jpg", anchored)
    assert lossy.detail == detail and f"{detail:g} of its detail over bicubic kept" in lossy.reason
    assert named_choice(PHOTO_WEIGHTS, tmp_path / "x.jpg", anchored).detail == detail
    assert named_choice(PHOTO_WEIGHTS, tmp_path / "x.png", anchored).detail == 1.0  # nothing read: as it is
    assert default_weights(tmp_path / "x.png", anchored) == Choice(DEFAULT_WEIGHTS, "png without compression damage")
    assert default_weights(tmp_path / "x.jpg", anchored, detail=1.0).detail == 1.0
    assert "detail" not in default_weights(tmp_path / "x.jpg", anchored, detail=1.0).label


def test_a_lossy_file_runs_the_photo_models_passes_a_clean_one_one_and_passes_given_win(tmp_path, photo_hr, anchored):
    """Anchor.passes (self-ensemble, chosen on validation) for what the file shows was compressed;
    one pass for a clean file; --passes given by the user wins for any model."""
    lr = Image.fromarray(downscale(photo_hr, 4))
    lr.save(tmp_path / "x.jpg", quality=60)
    lr.save(tmp_path / "x.png")
    passes = HEAVY_ANCHORS[PHOTO_WEIGHTS].passes
    lossy = default_weights(tmp_path / "x.jpg", anchored)
    assert lossy.passes == passes > 1  # chosen on validation (experiments.passes_rule): 2, for twice the time
    assert default_weights(tmp_path / "x.png", anchored).passes == 1
    assert named_choice(PHOTO_WEIGHTS, tmp_path / "x.png", anchored).passes == 1
    given = default_weights(tmp_path / "x.jpg", anchored, passes=4)
    assert given.passes == 4 and given.label.endswith(" passes 4")
    assert default_weights(tmp_path / "x.png", anchored, passes=2).passes == 2
    assert named_choice("fsrcnn_x4", tmp_path / "x.jpg", anchored, passes=2) == Choice("fsrcnn_x4", "given by --weights", passes=2)
    up = Upscaler.chosen(Choice("fsrcnn_x4", "", passes=2))
    assert up.passes == 2 and up.describe().endswith("self-ensemble of 2 passes")
    assert Upscaler.chosen(Choice("fsrcnn_x4", "")).passes == 1


def test_a_truncated_jpeg_keeps_its_table_quality_and_no_earlier_save_is_guessed(tmp_path, photo_hr):
    """The earlier-save reading decodes pixels; a file cut short still gets its table's reading, and
    the decoder's own error is left for the enlarger to report in its one line."""
    Image.fromarray(downscale(photo_hr, 4)).save(tmp_path / "whole.jpg", quality=60)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 3])
    history = read_history(tmp_path / "cut.jpg")
    assert (history.quality, history.earlier) == (60, None)
