"""The SPEC's bicubic table, reproduced through eval.py on the real benchmark images."""

import subprocess
import sys

import pytest

import eval as eval_script
from tests.conftest import ROOT

# BasicSR's reference numbers for plain bicubic (PSNR dB / SSIM on Y, crop = scale).
BICUBIC = {
    ("Set5", 2): (33.68, 0.9305), ("Set5", 3): (30.40, 0.8690), ("Set5", 4): (28.43, 0.8113),
    ("Set14", 2): (30.33, 0.8700), ("Set14", 3): (27.63, 0.7760), ("Set14", 4): (26.09, 0.7050),
    ("BSDS100", 2): (29.56, 0.8436), ("BSDS100", 3): (27.21, 0.7392), ("BSDS100", 4): (25.96, 0.6682),
}  # fmt: skip


@pytest.mark.parametrize("dataset,scale", list(BICUBIC))
def test_bicubic_matches_the_reference_table(data_root, dataset, scale):
    summary = eval_script.main(eval_script.parse_args(
        ["--bicubic", "--scale", str(scale), "--dataset", dataset, "--data-root", str(data_root)]))
    psnr, ssim = BICUBIC[dataset, scale]
    assert summary["bicubic_mean"]["psnr"] == pytest.approx(psnr, abs=0.01)
    assert summary["bicubic_mean"]["ssim"] == pytest.approx(ssim, abs=0.001)


# Issue 9.2: Y rounded as MATLAB's rgb2ycbcr on uint8 (measured 33.649 / 30.386 / 28.419) or
# unrounded as BasicSR (33.682 / 30.405 / 28.431).
SET5_BY_PROTOCOL = {"matlab": (33.65, 30.39, 28.42), "basicsr": (33.68, 30.40, 28.43)}


@pytest.mark.parametrize("protocol", list(SET5_BY_PROTOCOL))
def test_bicubic_set5_under_each_protocol(data_root, protocol):
    for scale, expected in zip((2, 3, 4), SET5_BY_PROTOCOL[protocol]):
        summary = eval_script.main(eval_script.parse_args(
            ["--bicubic", "--scale", str(scale), "--dataset", "Set5", "--data-root", str(data_root), "--protocol", protocol]))
        assert round(summary["bicubic_mean"]["psnr"], 2) == expected, (protocol, scale)


def test_the_cli_prints_the_set5_x3_line(data_root):
    result = subprocess.run([sys.executable, "eval.py", "--bicubic", "--dataset", "Set5", "--scale", "3",
                             "--data-root", str(data_root)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "mean        30.40 / 0.8690" in result.stdout
