import json
import os
import re
import struct
import subprocess
import sys
import traceback
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
from sr.checkpoint import save_checkpoint
from sr.cli import run
from sr.errors import UserError
from sr.data.degradation import downscale
from sr.protocol import bicubic_score, ground_truth
from sr.data.realistic import jpeg_degrade
from tests.conftest import ROOT, smooth_image, weights_only_checkpoint


def _checkpoint(path, arch, scale, color=None):
    torch.manual_seed(0)
    save_checkpoint(path, weights_only_checkpoint(arch, scale, color))
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
    Image.fromarray(np.zeros((3, 3, 3), dtype=np.uint8)).save(tmp_path / "three.png")
    with pytest.raises(UserError, match=r"three.png: 3x3 is too small to evaluate at x4"):  # issue 32: it said 0x0
        _eval("--bicubic", "--scale", "4", "--image", tmp_path / "three.png")
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
    with pytest.raises(UserError, match="cannot write"):
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
        (["--denoise", "0.5", "--detail", "0.5", "--upscale", str(photo)], "--heavy and --detail shape a photo model's"),
        (["--weights", "fsrcnn_x3", "--heavy", "0", "--image", str(photo)], "--heavy and --detail shape a photo model's"),
        (["--bicubic", "--scale", "3", "--passes", "2", "--image", str(photo)], "--bicubic runs none"),
        (["--weights", "fsrcnn_x3", "--tta", "--passes", "2", "--image", str(photo)], "--tta is --passes 8"),
    ]
    for argv, message in cases:
        result = subprocess.run([sys.executable, "eval.py", *argv], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------- enlarging many images


def _folder_of_kinds(folder):
    """RGB, RGBA, grey, 16-bit grey and a broken file, as the enlarger issue lists them."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    Image.fromarray(smooth_image(rng, 20, 24)).save(folder / "rgb.png")
    rgba = np.dstack([smooth_image(rng, 20, 24), np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (20, 1))])
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(smooth_image(rng, 20, 24)[..., 1]).save(folder / "grey.png")
    grey16 = (smooth_image(rng, 20, 24)[..., 0].astype(np.uint16) * 257 + rng.integers(0, 257, (20, 24))).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_upscale_over_a_folder_keeps_each_kind_and_reports_the_broken_file(tmp_path, capsys):
    """The enlarger issue's acceptance: four images of the inputs' modes and depths, the broken one named, exit 2."""
    folder = _folder_of_kinds(tmp_path / "in")
    argv = ["--weights", "fsrcnn_x2", "--upscale", str(folder), "--out-dir", str(tmp_path / "out"), "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert f"skipped {folder / 'broken.png'}: " in err and "1 of 5 images failed" in err.splitlines()[-1]
    modes = {}
    for path in sorted((tmp_path / "out").iterdir()):
        with Image.open(path) as img:
            modes[path.name] = (img.mode, img.size)
    assert modes == {"rgb_fsrcnn_x2.png": ("RGB", (48, 40)), "rgba_fsrcnn_x2.png": ("RGBA", (48, 40)),
                     "grey_fsrcnn_x2.png": ("L", (48, 40)), "grey16_fsrcnn_x2.png": ("I;16", (48, 40))}
    big16 = np.asarray(Image.open(tmp_path / "out" / "grey16_fsrcnn_x2.png"))
    assert (big16 % 257 != 0).mean() > 0.5  # 16-bit values, not an 8-bit image stretched to 16 bits


def test_upscale_takes_files_folders_patterns_and_repeated_images(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.jpg", "c.webp", "d.bmp"):
        Image.fromarray(smooth_image(rng, 16, 18)).save(folder / name)
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn-paper", 2)
    out = tmp_path / "out"
    written = _eval("--weights", weights, "--upscale", folder / "a.png", str(folder / "*.jpg"), "--image", folder / "c.webp",
                    "--image", folder, "--out-dir", out)  # c.webp and a.png twice: each enlarged once
    names = sorted(p.name for p in written)
    assert names == ["a_fsrcnn-paper_x2.png", "b_fsrcnn-paper_x2.jpg", "c_fsrcnn-paper_x2.webp", "d_fsrcnn-paper_x2.png"]
    assert sorted(p.name for p in out.iterdir()) == names  # jpg stays jpg; bmp, which is not written here, becomes png
    assert Image.open(out / "b_fsrcnn-paper_x2.jpg").format == "JPEG"
    assert "enlarging" in capsys.readouterr().err  # the progress bar

    # --format and --quality; --outscale names the final factor and gives its size
    _eval("--weights", weights, "--image", folder / "a.png", "--upscale", "--out-dir", out, "--format", "webp",
          "--quality", "30", "--outscale", "3.5")
    with Image.open(out / "a_fsrcnn-paper_x3.5.webp") as img:
        assert img.format == "WEBP" and img.size == (63, 56)  # round(18 * 3.5), round(16 * 3.5)

    with pytest.raises(UserError, match="--output names one file, but the inputs hold 4 images"):
        _eval("--weights", weights, "--upscale", folder, "--output", tmp_path / "x.png")
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(other / "a.png")
    with pytest.raises(UserError, match="would both be written to"):  # refused before any work
        _eval("--weights", weights, "--upscale", folder / "a.png", other / "a.png", "--out-dir", out)
    with pytest.raises(UserError, match="no file matches it as a pattern"):
        _eval("--weights", weights, "--upscale", str(folder / "*.tiff"))


def test_an_input_is_never_overwritten(tmp_path, capsys):
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn-paper", 2)
    Image.fromarray(np.full((10, 10, 3), 90, dtype=np.uint8)).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    argv = ["--weights", str(weights), "--image", str(tmp_path / "a.png"), "--upscale", "--output", str(tmp_path / "a.png"),
            "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (tmp_path / "a.png").read_bytes() == before


def test_a_failed_image_write_leaves_the_old_file_intact(tmp_path, monkeypatch, photo):
    """Issue 13: every file eval.py writes is replaced atomically, so a crash mid-write keeps the old one."""
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn-paper", 3)
    out = tmp_path / "big.png"
    out.write_bytes(b"the old result")
    real_save = Image.Image.save

    def save_then_fail(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        with open(fp, "r+b") as f:  # half the data is on disk when the "crash" comes
            f.truncate(100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    with pytest.raises(UserError, match="1 of 1 images failed"):
        _eval("--weights", weights, "--image", photo, "--upscale", "--output", out)
    assert out.read_bytes() == b"the old result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "w.pth"]  # no temporary file left

    (tmp_path / "scores").mkdir()
    old = tmp_path / "scores" / "photo_bicubic_x3.png"
    old.write_bytes(b"old picture")
    with pytest.raises(UserError, match="No space left"):
        _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path / "scores")
    assert old.read_bytes() == b"old picture" and len(list((tmp_path / "scores").iterdir())) == 1


# ---------------------------------------------------------------------- scoring options


def test_jpeg_degrades_the_lr_of_model_and_bicubic_and_is_recorded(tmp_path, photo):
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn-paper", 3)
    clean = _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path)
    jpeg = _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path, "--jpeg", "20", "--json", tmp_path / "j.json")
    hr = ground_truth(photo, 3)
    expected = bicubic_score(jpeg_degrade(downscale(hr, 3), 20), hr, 3).scores
    assert jpeg["bicubic_mean"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-9)
    assert jpeg["bicubic_mean"]["psnr"] < clean["bicubic_mean"]["psnr"] - 0.5
    assert jpeg["model_mean"]["psnr"] != clean["model_mean"]["psnr"]
    doc = json.loads((tmp_path / "j.json").read_text())
    assert (doc["jpeg"], doc["protocol"], doc["precision"]) == (20, "basicsr", "fp32")


def test_matlab_protocol_rounds_y_and_is_recorded(tmp_path, image_folders):
    weights = _checkpoint(tmp_path / "w.pth", "srresnet-noin", 2)
    runs = {p: _eval("--weights", weights, "--dataset", image_folders["eval"], "--protocol", p, "--json", tmp_path / f"{p}.json")
            for p in ("basicsr", "matlab")}
    basicsr, matlab = runs["basicsr"]["model_mean"], runs["matlab"]["model_mean"]
    assert 0 < abs(basicsr["psnr"] - matlab["psnr"]) < 0.2
    assert basicsr["psnr_rgb"] == matlab["psnr_rgb"]  # RGB scores do not depend on how Y is taken
    assert json.loads((tmp_path / "matlab.json").read_text())["protocol"] == "matlab"


def test_scoring_is_fp32_unless_asked_and_enlarging_follows_the_hardware(tmp_path, photo, monkeypatch):
    import sr.precision

    monkeypatch.setattr(sr.precision, "cpu_has_native_bf16", lambda: True)  # as on an AMX Xeon
    weights = _checkpoint(tmp_path / "w.pth", "fsrcnn-paper", 3)
    for extra, expected in (([], "fp32"), (["--amp"], "bf16")):
        _eval("--weights", weights, "--image", photo, "--out-dir", tmp_path, "--json", tmp_path / "s.json", *extra)
        assert json.loads((tmp_path / "s.json").read_text())["precision"] == expected
    seen = []
    real = eval_script.Upscaler.load
    monkeypatch.setattr(eval_script.Upscaler, "load", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    for extra in ([], ["--no-amp"]):
        _eval("--weights", weights, "--image", photo, "--upscale", "--output", tmp_path / "big.png", *extra)
    assert [u.precision.name for u in seen] == ["bf16", "fp32"]
    assert seen[0].precision.chosen_by == "hardware"


def test_scoring_refuses_outputs_that_overwrite_an_input_or_each_other_before_any_work(tmp_path, capsys):
    # Issue 21, row 7: `--image dir/foo_bicubic_x3.png --image dir/foo.png --out-dir dir` overwrote
    # the first input with foo.png's bicubic result, and p.png in two folders wrote over each
    # other's results; --upscale already refused both before enlarging anything.
    rng = np.random.default_rng(7)
    for folder in ("dir", "a", "b"):
        (tmp_path / folder).mkdir()
    for path in ("dir/foo.png", "dir/foo_bicubic_x3.png", "a/p.png", "b/p.png"):
        Image.fromarray(smooth_image(rng, 30, 36)).save(tmp_path / path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.png")}
    cases = [
        (["--image", tmp_path / "dir/foo_bicubic_x3.png", "--image", tmp_path / "dir/foo.png", "--out-dir", tmp_path / "dir"],
         "its output .*foo_bicubic_x3.png is an input, which is never overwritten"),
        (["--image", tmp_path / "a/p.png", "--image", tmp_path / "b/p.png", "--out-dir", tmp_path / "out"],
         "a/p.png and .*b/p.png would both be written to .*p_bicubic_x3.png"),
    ]
    for argv, message in cases:
        argv = ["--weights", "fsrcnn_x3", *map(str, argv), "--device", "cpu"]
        assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert re.search(message, err), err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.png")} == before  # nothing written, nothing overwritten
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- one bad file, bounded memory


def test_a_memory_error_on_one_image_skips_it_and_the_batch_goes_on(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(smooth_image(rng, 14, 12)).save(folder / name)
    real, calls = eval_script.enlarge, []

    def enlarge_or_run_out(up, photo, *args, **kwargs):
        calls.append(photo)
        if len(calls) == 2:  # the second image (b.png) runs out of memory
            raise MemoryError("Unable to allocate 4.29 GiB for an array with shape (24000, 32000, 3) and data type float64")
        return real(up, photo, *args, **kwargs)

    monkeypatch.setattr(eval_script, "enlarge", enlarge_or_run_out)
    argv = ["--weights", "fsrcnn_x2", "--upscale", str(folder), "--out-dir", str(tmp_path / "out"), "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert f"skipped {folder / 'b.png'}: out of memory (Unable to allocate 4.29 GiB" in err
    assert err.splitlines()[-1].endswith("1 of 3 images failed") and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_fsrcnn_x2.png", "c_fsrcnn_x2.png"]


def test_an_unexpected_error_or_a_broken_decoder_is_one_line(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(smooth_image(np.random.default_rng(4), 14, 12)).save(folder / "a.png")
    Image.fromarray(smooth_image(np.random.default_rng(5), 14, 12)).save(folder / "b.jpg")
    data = (folder / "b.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])  # truncated: the decoder fails half way
    import sr.photo_write

    monkeypatch.setattr(sr.photo_write, "output_pixels", lambda *a: (_ for _ in ()).throw(RuntimeError("a bug\nsecond line")))
    import sr.enlarge

    monkeypatch.setattr(sr.enlarge, "output_pixels", sr.photo_write.output_pixels)
    argv = ["--weights", "fsrcnn_x2", "--upscale", str(folder), "--out-dir", str(tmp_path / "out"), "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert f"skipped {folder / 'a.png'}: RuntimeError: a bug\n" in err and "second line" not in err
    assert f"skipped {folder / 'b.jpg'}: " in err and "2 of 2 images failed" in err.splitlines()[-1]


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_model_runs(tmp_path, capsys, monkeypatch, photo):
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(eval_script.Upscaler, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    argv = ["--weights", "fsrcnn_x2", "--upscale", str(photo), "--out-dir", str(tmp_path / "afile" / "out"), "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "afile/out: cannot write enlarged images there" in err


_UNDER_A_LIMIT = """
import resource, sys
import eval as eval_script
from sr.cli import run
from sr.enlarge import enlarge
from sr.upscaler import Upscaler
import numpy as np
from sr.photo import Photo, read_photo
from tests.whole_image import enlarge_whole

def address_space():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

src, out = sys.argv[1], sys.argv[2]
up = Upscaler.load("fsrcnn_x2", "cpu", amp=False)
enlarge(up, Photo(rgb=np.zeros((8, 8, 3))), "png")  # threads started, kernels built
limit = address_space() + 400 * 2**20  # what the process has now, and 400 MB more
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    enlarge_whole(up, read_photo(src))  # the whole-image oracle: several float64 arrays of 27 MP
    print("whole-image path: fits")
except (MemoryError, RuntimeError):  # numpy's allocator, or torch's
    print("whole-image path: MemoryError")
sys.argv = ["eval.py"]
code = run(eval_script.main, lambda: eval_script.parse_args(
    ["--weights", "fsrcnn_x2", "--upscale", src, "--output", out, "--device", "cpu"]))
print("exit", code)
"""


def test_an_image_too_large_for_the_whole_image_path_streams_under_an_address_space_limit(tmp_path):
    """1500x1500 -> 3000x3000 (9 MP): the whole-image oracle needs about 0.7 GB more; the limit allows 400 MB."""
    Image.fromarray(smooth_image(np.random.default_rng(8), 1500, 1500)).save(tmp_path / "big.png")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    result = subprocess.run([sys.executable, "-c", _UNDER_A_LIMIT, str(tmp_path / "big.png"), str(tmp_path / "out.png")],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert "whole-image path: MemoryError" in result.stdout, result.stdout + result.stderr
    assert "exit 0" in result.stdout, result.stdout + result.stderr[-2000:]
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == (3000, 3000) and img.mode == "RGB"


# ---------------------------------------------------------------------- sizes, Ctrl-C, progress, threads


def _zeros_png(path, width: int, height: int) -> None:
    """A black RGB PNG written row by row: 9000x9000 is 236 KB on disk and 243 MB decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\x00" * (1 + 3 * width)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_sizes_are_checked_before_any_work_and_the_batch_goes_on(tmp_path, capsys, monkeypatch):
    """Issue 32, row 4: a 236 KB 9000x9000 PNG x4 and --outscale 1000 asked for gigabytes at once.
    With 16 GB free, each is one line naming the size and the --outscale that fits, from the
    header alone (the file is never decoded); a JPEG over 65,535 pixels a side names a PNG.
    The figures stated: 16 GB free, 1 GB held by the process already, which counts against them."""
    import sr.outputs

    folder = tmp_path / "in"
    folder.mkdir()
    _zeros_png(folder / "huge.png", 9000, 9000)
    Image.fromarray(smooth_image(np.random.default_rng(9), 48, 64)).save(folder / "small.png")
    Image.fromarray(smooth_image(np.random.default_rng(9), 4, 17000)).save(folder / "wide.png")
    monkeypatch.setattr(sr.outputs, "memory_available", lambda: 16 * 10**9)
    monkeypatch.setattr(sr.outputs, "resident_memory", lambda: 10**9)  # as torch and the models take here, or so
    decoded = []
    real_read = eval_script.read_photo
    monkeypatch.setattr(eval_script, "read_photo", lambda path, **k: decoded.append(path.name) or real_read(path, **k))
    cases = [
        (["--upscale", folder / "huge.png", folder / "small.png"], "huge.png", r"9000x9000 x4 is 36000x36000 \(1,296 MP\), "
         r"held whole in memory while it is made: 5.2 GB, and [\d.]+ GB beside it are over 25% of the 16.0 GB free here; "
         r"--outscale ([\d.]+) fits"),
        (["--upscale", folder / "small.png", "--outscale", "1000"], "small.png", r"64x48 x1000 is 64000x48000 \(3,072 MP\), "
         r"held whole in memory while it is made: 12.3 GB, .*; --outscale ([\d.]+) fits"),
        (["--upscale", folder / "wide.png", "--format", "jpg"], "wide.png", r"17000x4 x4 is 68000x16 \(1 MP\), over the "
         r"65,535 pixels a side JPEG can store; write a PNG \(--format png\), or --outscale ([\d.]+) fits"),
    ]
    for argv, name, message in cases:
        out = tmp_path / f"out{len(decoded)}"
        argv = ["--weights", "fsrcnn_x4", *map(str, argv), "--out-dir", str(out), "--device", "cpu"]
        assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
        err = capsys.readouterr().err
        found = re.search(f"skipped .*{name}: " + message, err)
        assert found and err.splitlines()[-1].endswith("images failed") and "Traceback" not in err, err
        fmt = "jpg" if "jpg" in argv else "png"  # the factor named fits, and one 1% larger would not
        sr.outputs.check_fits(folder / name, 4, float(found.group(1)), fmt)
        with pytest.raises(UserError):
            sr.outputs.check_fits(folder / name, 4, float(found.group(1)) * 1.01, fmt)
    assert decoded == ["small.png"]  # only the one that fits was read, and written
    assert [p.name for p in (tmp_path / "out0").iterdir()] == ["small_fsrcnn_x4.png"]
    # Without --weights the picker reads each file whole to choose its model: not one too large to enlarge.
    picked, real_pick = [], eval_script.default_weights
    monkeypatch.setattr(eval_script, "default_weights", lambda path, **k: picked.append(path.name) or real_pick(path, **k))
    argv = ["--upscale", str(folder / "huge.png"), str(folder / "small.png"), "--out-dir", str(tmp_path / "picked"),
            "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    assert picked == ["small.png"] and "huge.png: 9000x9000 x4 is 36000x36000" in capsys.readouterr().err


def test_ctrl_c_during_a_tiled_image_exits_130_with_one_line_and_no_file(tmp_path, capsys, monkeypatch):
    import sr.enlarge
    import sr.enlarge_plan

    Image.fromarray(smooth_image(np.random.default_rng(2), 60, 40)).save(tmp_path / "in.png")
    monkeypatch.setattr(sr.enlarge_plan, "STAGE_BUDGET", 10**5)  # pieces of MIN_TILE a side: six
    pieces = []

    def pixels_or_ctrl_c(*args):
        pieces.append(args)
        if len(pieces) == 3:
            raise KeyboardInterrupt  # as Ctrl-C arriving during the third piece
        return sr.photo_write.output_pixels(*args)

    monkeypatch.setattr(sr.enlarge, "output_pixels", pixels_or_ctrl_c)
    argv = ["--weights", "fsrcnn_x2", "--upscale", str(tmp_path / "in.png"), "--out-dir", str(tmp_path / "out"),
            "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip("\n").rsplit("\r", 1)[-1].endswith(": interrupted"), repr(err)
    assert list((tmp_path / "out").iterdir()) == []  # no output, no temporary file


def test_a_long_run_names_the_faster_model_and_goes_on(tmp_path, capsys, monkeypatch):
    import sr.enlarge_plan

    Image.fromarray(smooth_image(np.random.default_rng(3), 24, 48)).save(tmp_path / "in.png")
    monkeypatch.setattr(eval_script, "LONG_RUN", -1)  # this small image stands for a long one
    monkeypatch.setattr(sr.enlarge_plan, "ACTIVATION_BUDGET", 2 * 10**6)  # in several tiles: timed after the first
    written = _eval("--weights", "srresnet_x4", "--upscale", tmp_path / "in.png", "--out-dir", tmp_path)
    err = capsys.readouterr().err
    assert re.search(r"in.png: about \d+ more minutes with srresnet_x4; --weights fsrcnn_x4 takes 1/\d+ of the time", err), err
    assert [p.name for p in written] == ["in_srresnet_x4.png"]  # the choice made is kept


def test_threads_default_to_every_core_and_the_flag_sets_them(tmp_path, photo, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert eval_script.parse_args([]).threads == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert eval_script.parse_args([]).threads == 1
    threads = torch.get_num_threads()
    try:
        _eval("--weights", "fsrcnn_x2", "--upscale", photo, "--out-dir", tmp_path, "--threads", "3")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


def test_eval_reaches_the_model_in_four_calls(tmp_path, photo, monkeypatch):
    """From eval.py's upscale_mode to the network: enlarge, the tile (or the piece and its model
    output), then the model itself (SRResNet's body or its upsampling tail); the plan's probe as
    deep. (A comprehension's frame, which Python 3.11 still makes, is no call in the code.)"""
    from sr.models.srresnet import SRResNet

    depths = []

    def recorded(method):
        def call(self, x):
            frames = [f.name for f in traceback.extract_stack() if "/tests/" not in f.filename and f.name[0] != "<"]
            depths.append(frames[frames.index("upscale_mode") + 1:] + [method.__name__])
            return method(self, x)
        return call

    for name in ("features", "reconstruct"):
        monkeypatch.setattr(SRResNet, name, recorded(getattr(SRResNet, name)))
    _eval("--weights", "srresnet_x4", "--upscale", photo, "--out-dir", tmp_path)
    assert {chain[-1] for chain in depths} == {"features", "reconstruct"}
    assert max(len(chain) for chain in depths) <= 4, depths
