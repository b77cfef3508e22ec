import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from sr.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from sr.metrics import psnr, ssim


def test_psnr_of_a_uniform_error_is_hand_computable():
    a = torch.full((1, 1, 20, 20), 0.5, dtype=torch.float64)
    b = a + 0.1
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-9)  # 10 log10(1 / 0.01)
    b[..., :2, :] = 1.0  # a bad border: cropping it away restores the 20 dB
    assert psnr(a, b, crop_border=2).item() == pytest.approx(20.0, abs=1e-9)
    assert psnr(a, b).item() < 19.0


def test_identical_images_give_infinite_psnr_and_ssim_one():
    x = torch.rand(2, 3, 30, 30)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


def test_psnr_is_per_image():
    a = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    b = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    b[0] += 0.1
    b[1] += 0.01
    assert psnr(a, b).tolist() == pytest.approx([20.0, 40.0])


def test_y_channel_follows_matlab_rgb2ycbcr():
    assert rgb_to_y(np.array([0.0, 0.0, 0.0])) == pytest.approx(16.0)
    assert rgb_to_y(np.array([255.0, 255.0, 255.0])) == pytest.approx(235.0)
    assert rgb_to_y(np.array([255.0, 0.0, 0.0])) == pytest.approx(16 + 65.481)
    assert rgb_to_ycbcr(np.array([0.0, 0.0, 255.0])) == pytest.approx([16 + 24.966, 128 + 112.0, 128 - 18.214])
    rgb = np.random.default_rng(0).uniform(0, 255, size=(10, 3))
    assert ycbcr_to_rgb(rgb_to_ycbcr(rgb)) == pytest.approx(rgb)


def test_psnr_on_y_uses_the_luma_of_colour_images():
    # A pure green error of 0.1 moves Y by 0.1 * 128.553 / 255.
    a = torch.full((1, 3, 16, 16), 0.4, dtype=torch.float64)
    b = a.clone()
    b[:, 1] += 0.1
    dy = 0.1 * 128.553 / 255
    assert psnr(a, b, y_channel=True).item() == pytest.approx(-20 * math.log10(dy), abs=1e-9)
    assert psnr(a, b, y_channel=False).item() == pytest.approx(-10 * math.log10(0.01 / 3), abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.3, 0.6
    x = torch.full((1, 1, 15, 15), a, dtype=torch.float64)
    y = torch.full((1, 1, 15, 15), b, dtype=torch.float64)
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_scikit_image_gaussian_ssim(seed):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, size=(40, 52))
    noisy = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255)
    reference = structural_similarity(base, noisy, data_range=255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    ours = ssim(torch.from_numpy(noisy / 255)[None, None], torch.from_numpy(base / 255)[None, None]).item()
    assert ours == pytest.approx(reference, abs=1e-9)


def test_rgb_ssim_is_the_mean_over_channels():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, size=(3, 30, 30)), rng.uniform(0, 1, size=(3, 30, 30))
    per_channel = [structural_similarity(a[c], b[c], data_range=1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False) for c in range(3)]
    ours = ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None], y_channel=False).item()
    assert ours == pytest.approx(np.mean(per_channel), abs=1e-9)


def test_shape_mismatch_and_tiny_images_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.zeros(1, 1, 12, 12), torch.zeros(1, 1, 12, 12), crop_border=2)
