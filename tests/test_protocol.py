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


def test_the_cli_prints_the_set5_x3_line(data_root):
    result = subprocess.run([sys.executable, "eval.py", "--bicubic", "--dataset", "Set5", "--scale", "3",
                             "--data-root", str(data_root)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "mean        30.40 / 0.8690" in result.stdout
