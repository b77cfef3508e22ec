import argparse
import dataclasses
import json
import math
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from torch.utils.data import DataLoader

import eval as eval_script
import train_srcnn
from conftest import make_h5, smooth_image
from experiments import export_weights, reproduce
from sr import protocol
from sr.training.loader import TrainingData
from sr.data.h5 import PatchDataset, check_fits
from sr.data.degradation import downscale, to_planes
from sr.data.degraded_patches import DegradedPatches
from sr.errors import UserError
from sr.data.degradation_settings import DEFAULTS, DegradationSettings, add_degradation_args, settings_from_args
from sr.data.realistic import degrade_batch, gaussian_kernels, gaussian_kernels_1d, jpeg_degrade

# Every step off: a plain downscale (bicubic, antialiased) and rounding. Tests switch one step on.
NOTHING = DegradationSettings(clean_prob=0, blur_prob=0, noise_prob=0, jpeg_prob=0, resize_modes=("bicubic",))


def batch(n: int, side: int, seed: int = 0, texture: float = 0.0) -> torch.Tensor:
    """(n, 3, side, side) uint8 photo-like HR patches, plus uniform noise of +-texture for fine detail."""
    rng = np.random.default_rng(seed)
    imgs = np.stack([smooth_image(rng, side, side) for _ in range(n)]).astype(np.float64)
    imgs += rng.uniform(-texture, texture, size=imgs.shape)
    return torch.from_numpy(np.clip(imgs, 0, 255).round().astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def degrade(hr: torch.Tensor, settings: DegradationSettings, seed: int = 0, scale: int = 4) -> torch.Tensor:
    return degrade_batch(hr, scale, settings, torch.Generator().manual_seed(seed))


def laplacian_var(x: torch.Tensor) -> float:
    x = x.double()
    lap = 4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
    return lap.var().item()


@pytest.fixture(scope="module")
def hr() -> torch.Tensor:
    return batch(16, 96, texture=40)


def test_shapes_dtypes_and_bad_input(hr):
    for scale in (2, 3, 4):
        lr = degrade(hr, DEFAULTS, scale=scale)
        assert lr.shape == (16, 3, 96 // scale, 96 // scale) and lr.dtype == torch.uint8
    assert degrade(hr[:, :, :48], DEFAULTS).shape == (16, 3, 12, 24)
    with pytest.raises(ValueError, match="multiple"):
        degrade(hr[..., :94], DEFAULTS)
    with pytest.raises(ValueError, match="uint8"):
        degrade(hr.float(), DEFAULTS)


def test_same_seed_same_output_other_seed_other_output(hr):
    a, b, c = degrade(hr, DEFAULTS, seed=5), degrade(hr, DEFAULTS, seed=5), degrade(hr, DEFAULTS, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # One generator across batches: the second batch gets new draws.
    g = torch.Generator().manual_seed(5)
    assert torch.equal(degrade_batch(hr, 4, DEFAULTS, g), a)
    assert not torch.equal(degrade_batch(hr, 4, DEFAULTS, g), a)


def test_clean_samples_get_the_protocol_bicubic(hr):
    lr = degrade(hr, replace(DEFAULTS, clean_prob=1.0))
    for i in range(len(hr)):
        expected = downscale(hr[i].permute(1, 2, 0).numpy(), 4)
        assert np.array_equal(lr[i].permute(1, 2, 0).numpy(), expected)
    # At the default share about one sample in ten is clean.
    big = batch(200, 16, seed=1)
    lr = degrade(big, DEFAULTS, seed=1)
    clean = [np.array_equal(lr[i].permute(1, 2, 0).numpy(), downscale(big[i].permute(1, 2, 0).numpy(), 4))
             for i in range(len(big))]
    assert 8 <= sum(clean) <= 35


def test_blur_lowers_high_frequencies(hr):
    sharp = degrade(hr, NOTHING)
    blurred = degrade(hr, replace(NOTHING, blur_prob=1.0, blur_sigma=(2.0, 3.0)))
    assert laplacian_var(blurred) < 0.5 * laplacian_var(sharp)
    # Nothing else changed: the mean level is kept.
    assert blurred.double().mean().item() == pytest.approx(sharp.double().mean().item(), abs=1.0)


def test_noise_has_the_requested_std():
    hr = batch(8, 128)  # smooth, mid-range: no clipping at 0 or 255
    clean = degrade(hr, NOTHING).double()
    for sigma in (3.0, 10.0):
        colour = degrade(hr, replace(NOTHING, noise_prob=1.0, noise_sigma=(sigma, sigma), grey_noise_prob=0.0))
        diff = colour.double() - clean
        # Rounding both adds ~1/12 of a level squared of variance.
        assert diff.std().item() == pytest.approx(math.sqrt(sigma**2 + 1 / 6), rel=0.05)
    # Colour noise is independent across channels; grey noise is the same in all three.
    grey = degrade(hr, replace(NOTHING, noise_prob=1.0, noise_sigma=(10, 10), grey_noise_prob=1.0))
    for noisy, low, high in ((colour, -0.1, 0.1), (grey, 0.97, 1.0)):
        d = (noisy.double() - clean).permute(1, 0, 2, 3).reshape(3, -1)
        assert low < torch.corrcoef(d)[0, 1].item() < high


def blockiness(lr: torch.Tensor) -> float:
    """Mean |horizontal step| across 8x8 block edges over that within blocks (1 when there are no blocks)."""
    step = (lr.double()[..., 1:] - lr.double()[..., :-1]).abs().mean(dim=(0, 1, 2))  # (W - 1,) step j -> j + 1
    edges = torch.zeros_like(step, dtype=torch.bool)
    edges[7::8] = True
    return (step[edges].mean() / step[~edges].mean()).item()


def test_low_quality_jpeg_shows_8x8_blocks_and_is_eval_jpeg():
    hr = batch(8, 256, seed=2)  # LR 64 px: 8 blocks across
    plain = degrade(hr, NOTHING)
    jpeg = degrade(hr, replace(NOTHING, jpeg_prob=1.0, jpeg_quality=(15, 15)))
    assert not torch.equal(plain, jpeg)
    assert blockiness(plain) < 1.1
    assert blockiness(jpeg) > 1.5
    # Training and eval.py share one JPEG: the pre-JPEG LR (same seed) through jpeg_degrade.
    for i in range(len(hr)):
        assert np.array_equal(jpeg_degrade(plain[i].permute(1, 2, 0).numpy(), 15), jpeg[i].permute(1, 2, 0).numpy())


def test_jpeg_degrade_quality_100_near_10_far():
    img = smooth_image(np.random.default_rng(3), 64, 80)

    def psnr(quality: int) -> float:
        out = jpeg_degrade(img, quality)
        assert out.shape == img.shape and out.dtype == np.uint8
        return 10 * math.log10(255**2 / ((out.astype(float) - img) ** 2).mean())

    # Pillow subsamples chroma 4:2:0 even at quality 100, so "close" is ~36 dB, not lossless.
    assert psnr(100) > 35 > psnr(75) > psnr(10) + 3
    with pytest.raises(ValueError):
        jpeg_degrade(img, 0)


def test_kernels_sum_to_one_and_anisotropic_ones_are_not_rotation_symmetric():
    sx = torch.tensor([2.0, 3.0, 3.0])
    sy = torch.tensor([2.0, 1.0, 1.0])
    angle = torch.tensor([0.0, 0.0, math.pi / 6])
    k = gaussian_kernels(sx, sy, angle, 21)
    assert k.shape == (3, 21, 21)
    assert k.sum(dim=(1, 2)).tolist() == pytest.approx([1, 1, 1], abs=1e-12)
    iso, aligned, turned = k
    assert torch.allclose(iso, torch.rot90(iso), atol=1e-15)
    assert not torch.allclose(aligned, torch.rot90(aligned), atol=1e-3)
    assert not torch.allclose(turned, torch.rot90(turned), atol=1e-3)
    # sigma_x lies along the columns at angle 0: the kernel spreads 3x wider in x than in y.
    coords = torch.arange(-10, 11, dtype=torch.float64)
    std_x = (aligned.sum(0) * coords**2).sum().sqrt().item()
    std_y = (aligned.sum(1) * coords**2).sum().sqrt().item()
    assert std_x == pytest.approx(3.0, rel=0.02) and std_y == pytest.approx(1.0, rel=0.02)
    # Turned counter-clockwise on screen (y down): the mass lies along the rising diagonal.
    assert turned[10 - 3, 10 + 3] > turned[10 + 3, 10 + 3]


def test_flags_defaults_round_trip_and_errors():
    parser = argparse.ArgumentParser()
    add_degradation_args(parser)
    assert settings_from_args(parser.parse_args([])) == DEFAULTS
    args = parser.parse_args(["--degrade-jpeg-quality", "50", "60", "--degrade-resize-modes", "area",
                              "--degrade-noise-prob", "0"])
    s = settings_from_args(args)
    assert s.jpeg_quality == (50, 60) and s.resize_modes == ("area",) and s.noise_prob == 0
    assert DegradationSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(UserError, match="--degrade-jpeg-quality"):
        settings_from_args(parser.parse_args(["--degrade-jpeg-quality", "90", "30"]))
    text = " ".join(parser.format_help().split())  # argparse wraps lines at will
    assert text.count("(default: ") == len(dataclasses.fields(DegradationSettings))  # one flag a setting
    assert "probability of a Gaussian blur before downscaling (default: 0.8)" in text


def test_separable_kernels_match_the_2d_ones():
    sigma = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    k1 = gaussian_kernels_1d(sigma, 19)
    assert k1.sum(dim=1).tolist() == pytest.approx([1, 1, 1], abs=1e-12)
    k2 = gaussian_kernels(sigma, sigma, torch.zeros(3, dtype=torch.float64), 19)
    # Only the tails zeroed below 1e-12 (before normalising) differ.
    assert torch.allclose(k1[:, :, None] * k1[:, None, :], k2, rtol=0, atol=1e-10)


def test_stored_clean_lr_is_what_clean_samples_get(hr):
    stored = torch.full((16, 3, 24, 24), 7, dtype=torch.uint8)
    assert torch.equal(degrade_batch(hr, 4, replace(DEFAULTS, clean_prob=1.0), torch.Generator(), clean_lr=stored), stored)
    # Degraded samples are untouched by it: same draws, same pixels.
    some = replace(DEFAULTS, clean_prob=0.5)
    with_lr = degrade_batch(hr, 4, some, torch.Generator().manual_seed(1), clean_lr=stored)
    without = degrade(hr, some, seed=1)
    degraded = (with_lr != 7).flatten(1).any(dim=1)
    assert 0 < degraded.sum() < 16
    assert torch.equal(with_lr[degraded], without[degraded])
    with pytest.raises(ValueError, match="clean_lr"):
        degrade_batch(hr, 4, DEFAULTS, torch.Generator(), clean_lr=stored[:, :, :12])


# --- DegradedPatches: the training data path ---------------------------------------------


@pytest.fixture(scope="module")
def rgb_x4(tmp_path_factory, image_folders):
    """A clean lr-hr RGB x4 file: 196 patches of 32 px HR / 8 px LR."""
    train, _ = make_h5(tmp_path_factory.mktemp("rgb"), image_folders, 4, "--layout", "lr-hr", "--color", "rgb",
                       "--patch-size", "32", "--stride", "8")
    return train


BATCH = [150, 3, 77, 41, 9, 120, 64, 190, 18, 101, 55, 33, 170, 2, 88, 140]


@pytest.mark.parametrize("load", ["memory", "lazy"])
def test_degraded_patches_are_a_pure_function_of_seed_and_batch(rgb_x4, load):
    base = PatchDataset(rgb_x4, load)
    data = DegradedPatches(base, 4, DEFAULTS, seed=3)
    lr, hr = data[BATCH]
    assert lr.shape == (16, 3, 8, 8) and hr.shape == (16, 3, 32, 32) and lr.dtype == hr.dtype == torch.uint8
    clean_lr, clean_hr = PatchDataset(rgb_x4, "memory")[BATCH]
    assert torch.equal(hr, clean_hr)  # HR as stored, in the caller's order
    assert (lr != clean_lr).flatten(1).any(dim=1).sum() >= 10  # most samples degraded
    # Again, after other batches, after set_epoch, and in a copy as a loader worker gets it.
    data[BATCH[:5]]
    data.set_epoch(7)
    worker_copy = pickle.loads(pickle.dumps(data))
    for again in (data[BATCH], worker_copy[BATCH]):
        assert torch.equal(again[0], lr) and torch.equal(again[1], hr)
    # The order within a batch changes only the order of the output: samples are degraded sorted.
    shuffled = BATCH[::-1]
    lr_r, hr_r = data[shuffled]
    assert torch.equal(lr_r, lr.flip(0)) and torch.equal(hr_r, hr.flip(0))
    # Another seed, or another batch around the same patch, gives other degradations.
    assert not torch.equal(DegradedPatches(base, 4, DEFAULTS, seed=4)[BATCH][0], lr)
    assert not torch.equal(data[BATCH[:-1] + [5]][0][:-1], lr[:-1])


def test_memory_and_lazy_files_give_the_same_batches(rgb_x4):
    memory = DegradedPatches(PatchDataset(rgb_x4, "memory"), 4, DEFAULTS, seed=0)
    lazy = DegradedPatches(PatchDataset(rgb_x4, "lazy"), 4, DEFAULTS, seed=0)
    assert memory.in_memory and not lazy.in_memory
    for a, b in zip(memory[BATCH], lazy[BATCH]):
        assert torch.equal(a, b)


def test_clean_samples_take_the_stored_lr_exactly(rgb_x4):
    base = PatchDataset(rgb_x4, "memory")
    lr, hr = DegradedPatches(base, 4, replace(DEFAULTS, clean_prob=1.0), seed=0)[BATCH]
    stored_lr, stored_hr = base[BATCH]
    assert torch.equal(lr, stored_lr) and torch.equal(hr, stored_hr)
    # That LR is the bicubic of the whole image cut to the patch, not of the patch alone:
    # they differ at the borders, where the patch's own bicubic has to mirror its edge.
    patch_alone = np.stack([downscale(h.permute(1, 2, 0).numpy(), 4) for h in stored_hr]).transpose(0, 3, 1, 2)
    assert not np.array_equal(patch_alone, lr.numpy())
    assert np.abs(patch_alone.astype(int) - lr.numpy())[..., 2:-2, 2:-2].max() <= 1


def test_y_colour_gives_the_y_planes_of_prepare_h5(rgb_x4):
    base = PatchDataset(rgb_x4, "memory")
    data = DegradedPatches(base, 4, replace(DEFAULTS, clean_prob=0.5), seed=0, color="y")
    assert data.lr_shape == (1, 8, 8) and data.hr_shape == (1, 32, 32)
    lr, hr = data[BATCH]
    assert lr.shape == (16, 1, 8, 8) and hr.shape == (16, 1, 32, 32) and lr.dtype == hr.dtype == torch.uint8
    rgb_lr, rgb_hr = DegradedPatches(base, 4, replace(DEFAULTS, clean_prob=0.5), seed=0)[BATCH]
    for i in range(len(BATCH)):  # the rule of prepare_h5.py --color y: BT.601 Y of the RGB, rounded
        assert np.array_equal(hr[i].numpy(), to_planes(rgb_hr[i].permute(1, 2, 0).numpy(), "y"))
        assert np.array_equal(lr[i].numpy(), to_planes(rgb_lr[i].permute(1, 2, 0).numpy(), "y"))
    assert 16 <= hr.min() and hr.max() <= 235


def test_attrs_and_refusals(rgb_x4, h5_x3):
    base = PatchDataset(rgb_x4, "memory")
    data = DegradedPatches(base, 4, DEFAULTS, seed=9, color="y")
    assert len(data) == len(base) == 196 and data.path == base.path
    assert DegradationSettings.from_dict(json.loads(data.attrs["degradation"])) == DEFAULTS
    assert data.attrs["degradation_seed"] == 9 and data.attrs["patch_size"] == 32
    check_fits(data.attrs, data.path, 4, "lr-hr", "y")  # what FSRCNN's training checks
    with pytest.raises(UserError, match=r"scale 4 \(need 2\).*--layout lr-hr --color rgb"):
        DegradedPatches(base, 2, DEFAULTS, seed=0)
    with pytest.raises(UserError, match="layout 'upsampled'.*color 'y'"):
        DegradedPatches(PatchDataset(h5_x3[0]), 3, DEFAULTS, seed=0)
    with pytest.raises(ValueError, match="color"):
        DegradedPatches(base, 4, DEFAULTS, seed=0, color="ycbcr")


def test_loader_workers_give_the_same_batches_as_the_main_process(rgb_x4):
    data = DegradedPatches(PatchDataset(rgb_x4, "memory"), 4, DEFAULTS, seed=1)
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [perm[i : i + 32] for i in range(0, 192, 32)]  # what a sampler yields: lists of indices

    def run(workers: int) -> list:
        loader = DataLoader(data, sampler=batches, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        return list(loader) + list(loader)  # two passes: persistent workers keep their copies

    main, workers = run(0), run(2)
    assert len(main) == len(workers) == 12
    for (lr_a, hr_a), (lr_b, hr_b) in zip(main, workers):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    # Resuming after 4 batches: the rest are the same batches.
    resumed = list(DataLoader(data, sampler=batches[4:], batch_size=None, num_workers=0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(resumed, main[4:6]))


# --- --eval-jpeg: validation on what photos carry -----------------------------------------


def test_eval_jpeg_remakes_the_validation_lr_as_eval_py_does(rgb_x4):
    evaluation = rgb_x4.parent / "eval_x4.h5"  # made beside it by make_h5
    clean = TrainingData.open(rgb_x4, evaluation, 4, "lr-hr", "rgb")
    photo = TrainingData.open(rgb_x4, evaluation, 4, "lr-hr", "rgb", eval_jpeg=30)
    assert [i.name for i in photo.eval_images] == [i.name for i in clean.eval_images] and len(clean.eval_images) == 3
    for c, p in zip(clean.eval_images, photo.eval_images):
        assert np.array_equal(c.hr, p.hr)
        assert np.array_equal(c.inputs, to_planes(protocol.degrade(c.hr, 4), "rgb"))  # the file's: the clean protocol LR
        assert np.array_equal(p.inputs, to_planes(protocol.degrade(c.hr, 4, 30), "rgb"))
        assert not np.array_equal(p.inputs, c.inputs)
    assert "LR JPEG q30" in photo.describe(1, 16) and "JPEG" not in clean.describe(1, 16)


def test_a_photo_run_records_eval_jpeg_in_its_args_its_recipe_and_its_resume(tmp_path, rgb_x4, image_folders):
    _, y_eval = make_h5(tmp_path, image_folders, 4, "--layout", "lr-hr", "--color", "y", "--patch-size", "32", "--stride", "32")
    argv = ["--arch", "fsrcnn-paper", "--scale", "4", "--color", "y", "--train", str(rgb_x4), "--eval", str(y_eval),
            "--out", str(tmp_path / "run"), "--device", "cpu", "--batch-size", "32", "--epochs", "1",
            "--degrade", "--degrade-jpeg-quality", "40", "95", "--eval-jpeg", "75"]
    result = train_srcnn.main(train_srcnn.parse_args(argv))
    args = json.loads((tmp_path / "run" / "args.json").read_text())
    assert args["eval_jpeg"] == 75 and args["degradation"]["jpeg_quality"] == [40, 95]
    # The run's score is eval.py's with --jpeg 75 on the same images: one code path for both.
    summary = eval_script.main(eval_script.parse_args(["--weights", str(tmp_path / "run" / "best.pth"), "--device", "cpu",
                                                       "--dataset", str(image_folders["eval"]), "--jpeg", "75"]))
    assert summary["model_mean"]["psnr"] == pytest.approx(result["best_psnr"], abs=1e-3)
    assert "--eval-jpeg 75" in export_weights.command(args) and "--degrade-jpeg-quality 40 95" in export_weights.command(args)
    export_weights.main([str(tmp_path / "run"), "--name", "photo_x4", "--out-dir", str(tmp_path / "weights")])
    recipe = json.loads((tmp_path / "weights" / "photo_x4.json").read_text())
    assert recipe["runs"][-1]["validation"]["lr_jpeg_quality"] == 75 and "JPEG q75" in recipe["chosen_by"]
    # RGB patches for training, a Y file for validation: two prepare_h5.py calls, both replayed.
    # A replay writes only inside its folder: the paths of this tmp_path run, made relative, as a recipe records them.
    recipe = json.loads(json.dumps(recipe).replace(str(tmp_path.parent) + "/", ""))  # this test's and its fixtures' folders
    run = recipe["runs"][-1]
    assert "--color rgb" in run["prepare"] and "--color y" in run["prepare_eval"]
    steps = [" ".join(step) for step in reproduce.plan(recipe, argparse.Namespace(max_images=None, epochs_scale=1, keep_precision=False))]
    assert steps[:2] == [run["prepare"], run["prepare_eval"]] and steps[2].startswith("python train_srcnn.py")
    with pytest.raises(UserError, match="--eval-jpeg 50 differs from the resumed run's 75"):
        train_srcnn.main(train_srcnn.parse_args(["--resume", str(tmp_path / "run" / "last.pth"), "--eval-jpeg", "50"]))
    with pytest.raises(SystemExit):
        train_srcnn.parse_args(argv[:-1] + ["101"])


def _plain_lr(hr: torch.Tensor) -> torch.Tensor:
    """NOTHING's LR: antialiased bicubic to a quarter, rounded."""
    lr = torch.nn.functional.interpolate(hr.float(), scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)
    return lr.round().clamp(0, 255).to(torch.uint8)


def test_webp_share_saves_the_lr_as_lossy_webp(hr):
    from sr.data.field import compress

    lr = degrade(hr, replace(NOTHING, jpeg_prob=1.0, jpeg_quality=(70, 70), webp_share=1.0))
    for got, plain in zip(lr, _plain_lr(hr)):
        want = compress(plain.permute(1, 2, 0).numpy(), "webp", 70)
        assert np.array_equal(got.permute(1, 2, 0).numpy(), want)


def test_grid_shift_moves_the_jpeg_grid_by_up_to_seven_pixels(hr):
    from sr.data.field import shifted_compress

    lr = degrade(hr, replace(NOTHING, jpeg_prob=1.0, jpeg_quality=(60, 60), grid_shift_prob=1.0))
    shifts = set()
    for got, plain in zip(lr, _plain_lr(hr)):
        rgb = plain.permute(1, 2, 0).numpy()
        found = [(dy, dx) for dy in range(8) for dx in range(8)
                 if np.array_equal(got.permute(1, 2, 0).numpy(), shifted_compress(rgb, "jpeg", 60, dy, dx))]
        assert found, "no grid offset 0-7 gives this sample"
        shifts.add(found[0])
    assert len(shifts) > 4  # offsets are drawn per sample


def test_field_steps_are_seeded_and_leave_other_samples_alone(hr):
    field = replace(DEFAULTS, webp_share=0.3, grid_shift_prob=0.5, resize_after_prob=0.3, second_prob=0.5)
    a, b = degrade(hr, field, seed=3), degrade(hr, field, seed=3)
    assert torch.equal(a, b) and a.shape == (16, 3, 24, 24)
    assert not torch.equal(a, degrade(hr, field, seed=4))
    # The field steps draw after every draw of the JPEG-only model: with them all off, the same LR as before.
    off = replace(field, webp_share=0.0, grid_shift_prob=0.0, resize_after_prob=0.0, second_prob=0.0)
    assert torch.equal(degrade(hr, off, seed=3), degrade(hr, DEFAULTS, seed=3))
    # Resized after compression and second rounds change the LR from the one-save model's.
    assert not torch.equal(degrade(hr, replace(DEFAULTS, resize_after_prob=1.0), seed=3), degrade(hr, DEFAULTS, seed=3))
    assert not torch.equal(degrade(hr, replace(DEFAULTS, second_prob=1.0), seed=3), degrade(hr, DEFAULTS, seed=3))


def test_second_swap_changes_only_the_samples_saved_twice(hr):
    twice = replace(DEFAULTS, jpeg_prob=1.0, second_prob=0.5)
    same, swapped = degrade(hr, twice, seed=5), degrade(hr, replace(twice, second_swap_prob=1.0), seed=5)
    assert torch.equal(degrade(hr, replace(twice, second_swap_prob=0.0), seed=5), same)  # drawn last: nothing else moves
    changed = [i for i in range(len(hr)) if not torch.equal(same[i], swapped[i])]
    once = degrade(hr, replace(twice, second_prob=0.0), seed=5)
    saved_twice = [i for i in range(len(hr)) if not torch.equal(same[i], once[i])]
    assert changed and set(changed) <= set(saved_twice)  # a second save in the other format, and nowhere else
