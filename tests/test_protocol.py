"""The SPEC's bicubic table, reproduced through eval.py on the real benchmark images.

The suite checks the rows that cover every path of the protocol: Set5 at x2, x3 and x4, and Set14
at x3 (a greyscale image, and sizes that are no multiple of 3, so mod-crop trims them). The other
rows (Set14 x2 and x4, BSDS100 at every scale: 100 photos, about a minute a scale on 2 cores) score
the same code on more images; they are marked ``benchmark``, which pytest.ini deselects:
``python -m bench.tables bicubic`` runs the whole table and prints each row.
"""

import subprocess
import sys

import pytest

import eval as eval_script
from tests.conftest import BICUBIC, ROOT

IN_THE_SUITE = {("Set5", 2), ("Set5", 3), ("Set5", 4), ("Set14", 3)}


@pytest.mark.parametrize("dataset,scale", [
    pytest.param(*row, marks=() if row in IN_THE_SUITE else pytest.mark.benchmark) for row in BICUBIC])
def test_bicubic_matches_the_reference_table(data_root, dataset, scale, record_property):
    """eval.py --bicubic gives BasicSR's number (basicsr protocol) for each row of the table; Set14 x2/x4
    and BSDS100 only in ``python -m bench.tables`` (see the module docstring)."""
    summary = eval_script.main(eval_script.parse_args(["--bicubic", "--scale", str(scale), "--dataset", dataset,
                                                       "--data-root", str(data_root), "--protocol", "basicsr"]))
    psnr, ssim = BICUBIC[dataset, scale]
    measured = summary["bicubic_mean"]
    record_property("measured", f"{measured['psnr']:.3f} / {measured['ssim']:.5f}")
    record_property("expected", f"{psnr:.2f} / {ssim:.4f}")
    assert measured["psnr"] == pytest.approx(psnr, abs=0.01)
    assert measured["ssim"] == pytest.approx(ssim, abs=0.001)


# Y rounded to integers as MATLAB's rgb2ycbcr returns it for uint8 images (measured 33.649 / 30.386 /
# 28.419), where the basicsr protocol (the table above) leaves it unrounded (33.682 / 30.405 / 28.431).
SET5_MATLAB = {2: 33.65, 3: 30.39, 4: 28.42}


def test_bicubic_set5_under_the_matlab_protocol(data_root):
    for scale, expected in SET5_MATLAB.items():
        assert expected != round(BICUBIC["Set5", scale][0], 2)  # so the flag must change the number
        summary = eval_script.main(eval_script.parse_args(
            ["--bicubic", "--scale", str(scale), "--dataset", "Set5", "--data-root", str(data_root), "--protocol", "matlab"]))
        assert round(summary["bicubic_mean"]["psnr"], 2) == expected, scale


def test_the_cli_prints_the_set5_x3_line(data_root):
    # No --protocol: the default is basicsr's, whose x3 line is the table's (matlab's would read 30.39).
    result = subprocess.run([sys.executable, "eval.py", "--bicubic", "--dataset", "Set5", "--scale", "3",
                             "--data-root", str(data_root)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "mean        30.40 / 0.8690" in result.stdout
