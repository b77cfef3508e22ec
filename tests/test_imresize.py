import numpy as np
import pytest

from sr.data.degradation import downscale, mod_crop, upscale
from sr.imresize import imresize

# MATLAB's bicubic (a = -0.5) taps for a x2 enlargement: samples sit 0.25 and 0.75 px from
# the input pixels, so the weights are cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25).
X2_TAPS = [-0.0234375, 0.2265625, 0.8671875, -0.0703125]


def test_x2_enlargement_of_an_impulse_gives_the_bicubic_taps():
    row = np.zeros((1, 9))
    row[0, 4] = 1.0
    out = imresize(row, 2)[0]
    assert out.shape == (18,)
    # Output j sits at input j / 2 - 0.25: outputs 5..12 are 1.75, 1.25, 0.75, 0.25, 0.25,
    # 0.75, 1.25, 1.75 px from the impulse.
    a, b, c, d = X2_TAPS  # cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25)
    assert out[5:13] == pytest.approx([a, d, b, c, c, b, d, a], abs=1e-12)
    assert out[:5] == pytest.approx(0) and out[13:] == pytest.approx(0)


def test_halving_uses_the_antialiased_kernel():
    # Shrinking by 2 widens the kernel to 8 taps: weights 0.5 * cubic(0.5 * d) normalised.
    row = np.zeros((1, 16))
    row[0, 8] = 1.0
    d = np.array([3.5, 2.5, 1.5, 0.5, -0.5, -1.5, -2.5, -3.5])
    ax = np.abs(d / 2)
    cubic = np.where(ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1, np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0))
    weights = cubic / cubic.sum()
    out = imresize(row, 0.5)[0]
    # Output i sits at input 2i + 0.5: outputs 2..5 are -3.5, -1.5, 0.5, 2.5 px from the impulse.
    assert out[2:6] == pytest.approx([weights[7], weights[5], weights[3], weights[1]], abs=1e-12)
    assert weights[3] == pytest.approx(0.43359375)  # 0.5 * cubic(0.25)
    assert out.sum() == pytest.approx(0.5)  # half the outputs: the impulse's mass is halved


def test_constants_and_ramps_survive():
    const = np.full((30, 21, 3), 77.0)
    assert imresize(const, 1 / 3) == pytest.approx(np.full((10, 7, 3), 77.0))
    assert imresize(const, 3) == pytest.approx(np.full((90, 63, 3), 77.0))
    ramp = np.tile(np.arange(40, dtype=np.float64), (5, 1))
    # Keys' cubic reproduces linear functions away from the mirrored border.
    small = imresize(ramp, 0.5)
    assert small[2, 3:17] == pytest.approx(2 * np.arange(3, 17) + 0.5)


def test_output_size_is_ceil_of_scaled_size():
    assert imresize(np.zeros((10, 7)), 1 / 3).shape == (4, 3)
    assert imresize(np.zeros((5, 4, 3)), 4).shape == (20, 16, 3)


def test_rows_and_columns_commute():
    img = np.random.default_rng(0).uniform(0, 255, size=(24, 18))
    assert imresize(img, 0.5) == pytest.approx(imresize(img.T, 0.5).T)


def test_degradation_crops_rounds_and_upscales():
    img = np.random.default_rng(1).integers(0, 256, size=(50, 47, 3), dtype=np.uint8)
    hr = mod_crop(img, 3)
    assert hr.shape == (48, 45, 3) and np.array_equal(hr, img[:48, :45])
    lr = downscale(hr, 3)
    assert lr.dtype == np.uint8 and lr.shape == (16, 15, 3)
    assert np.array_equal(lr, np.clip(np.round(imresize(hr, 1 / 3)), 0, 255).astype(np.uint8))
    up = upscale(lr, 3)
    assert up.dtype == np.uint8 and up.shape == hr.shape
