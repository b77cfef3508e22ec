"""Community models through the enlarger (issue 23): spandrel's own architectures, built here with
random weights and saved as .pth and .safetensors (no downloads), against spandrel's own forward."""

import os
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
from sr.cli import run
from sr.errors import UserError
from sr.enlarge import enlarge
from sr.photo import Photo
from sr.upscaler import Upscaler

if os.environ.get("CI", "").lower() == "true":
    import spandrel  # under CI the zoo extra is installed: a missing spandrel fails, it does not skip
else:
    spandrel = pytest.importorskip("spandrel", reason='spandrel is not installed (pip install -e ".[zoo]")')
from safetensors.torch import save_file  # noqa: E402


def _compact():
    from spandrel.architectures.Compact import Compact  # Real-ESRGAN's SRVGGNetCompact (realesr-general-x4v3)
    return Compact(num_feat=8, num_conv=3, upscale=4)


def _rrdb():
    from spandrel.architectures.ESRGAN import ESRGAN  # RRDBNet (RealESRGAN_x4plus), 1 block of 8 filters
    return ESRGAN(num_filters=8, num_blocks=1, scale=4)


def _swinir():
    from spandrel.architectures.SwinIR import SwinIR  # windowed attention; inputs padded to its window
    return SwinIR(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2.0,
                  upsampler="pixelshuffle")


BUILDERS = {"compact": (_compact, "RealESRGAN Compact", 4), "rrdb": (_rrdb, "ESRGAN", 4), "swinir": (_swinir, "SwinIR", 2)}


def zoo_file(folder, which: str, suffix: str):
    """A spandrel architecture with random weights (seeded), saved as a third party would save it."""
    torch.manual_seed(list(BUILDERS).index(which))
    net = BUILDERS[which][0]().eval()
    with torch.no_grad():  # random, but not so small that the output is flat
        for p in net.parameters():
            p.mul_(1.5)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    path = folder / f"{which}{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({"params_ema": state}, path)  # Real-ESRGAN's own layout, unwrapped by spandrel
    return path


def spandrel_forward(path, rgb: np.ndarray) -> np.ndarray:
    """spandrel's own loader and forward: (h, w, 3) uint8 -> (H, W, 3) float in [0, 255]."""
    descriptor = spandrel.ModelLoader().load_from_file(path).eval()
    with torch.no_grad():
        out = descriptor(torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float()[None] / 255)
    return out[0].numpy().transpose(1, 2, 0) * 255


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("which", list(BUILDERS))
def test_a_zoo_model_enlarges_as_spandrel_runs_it(tmp_path, which, suffix):
    path = zoo_file(tmp_path, which, suffix)
    up = Upscaler.load(path, "cpu", amp=False)
    assert (up.arch, up.scale, up.color, up.layout) == (f"zoo:{BUILDERS[which][1]}", BUILDERS[which][2], "rgb", "lr-hr")
    rgb = np.random.default_rng(1).integers(0, 256, size=(18, 22, 3), dtype=np.uint8)
    ours, theirs = np.asarray(enlarge(up, Photo(rgb=rgb))[0]).astype(int), spandrel_forward(path, rgb)
    assert ours.shape == theirs.shape == (18 * up.scale, 22 * up.scale, 3)
    assert np.abs(ours - np.clip(theirs, 0, 255).round()).max() <= 1
    assert theirs.std() > 5  # a real picture, not a flat one


def test_zoo_upscale_of_a_folder_keeps_alpha_and_16_bit_and_tiles_agree(tmp_path):
    path = zoo_file(tmp_path, "compact", ".safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, size=(20, 24, 4), dtype=np.uint8), "RGBA").save(photos / "alpha.png")
    Image.fromarray(rng.integers(0, 65536, size=(20, 24), dtype=np.uint16)).save(photos / "deep.png")
    Image.fromarray(rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(photos / "plain.png")
    written = eval_script.main(eval_script.parse_args(["--weights", str(path), "--upscale", str(photos), "--out-dir",
                                                       str(tmp_path / "big"), "--device", "cpu"]))
    assert len(written) == 3
    by_name = {p.name.split("_")[0]: p for p in written}
    with Image.open(by_name["alpha"]) as big:
        assert big.mode == "RGBA" and big.size == (96, 80)
    with Image.open(by_name["deep"]) as big:
        assert big.mode in ("I;16", "I") and big.size == (96, 80) and np.asarray(big).max() > 255
    tiled = eval_script.main(eval_script.parse_args(["--weights", str(path), "--upscale", str(photos / "plain.png"),
                                                     "--out-dir", str(tmp_path / "tiled"), "--tile", "7", "--device", "cpu"]))
    with Image.open(by_name["plain"]) as whole, Image.open(tiled[0]) as pieces:
        assert np.abs(np.asarray(whole, dtype=int) - np.asarray(pieces, dtype=int)).max() <= 1


def test_a_x4_zoo_model_is_scored_on_set5(tmp_path, data_root):
    path = zoo_file(tmp_path, "compact", ".pth")
    summary = eval_script.main(eval_script.parse_args(["--weights", str(path), "--dataset", str(data_root / "Set5"),
                                                       "--device", "cpu"]))
    assert np.isfinite(summary["model_mean"]["psnr"]) and 0 < summary["model_mean"]["ssim"] < 1


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _legacy(path):
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)


BAD = {
    "truncated safetensors": (lambda p: p.write_bytes(zoo_file(p.parent, "compact", ".safetensors").read_bytes()[:300]),
                              ".safetensors", r"not a readable safetensors file"),
    "junk": (lambda p: p.write_bytes(b"\x00junk" * 20), ".pth", r"not a readable PyTorch checkpoint"),
    "pickled code": (lambda p: torch.save({"w": Payload()}, p), ".pth",
                     r"holds a Python object other than tensors and plain values \(\w+\.system\); not loaded, none of its code ran"),
    "old pickle format": (_legacy, ".pth", r"PyTorch's old pickle format"),
    "unknown architecture": (lambda p: save_file({"foo.weight": torch.zeros(3, 3)}, p), ".safetensors",
                             r"neither a checkpoint of this project nor an architecture spandrel detects"),
    "empty safetensors": (lambda p: p.write_bytes(struct.pack("<Q", 2) + b"{}"), ".safetensors",
                          r"neither a checkpoint of this project nor an architecture spandrel detects"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_third_party_file_is_refused_in_one_line(tmp_path, capsys, case):
    make, suffix, message = BAD[case]
    path = tmp_path / f"bad{suffix}"
    make(path)
    with pytest.raises(UserError, match=message):
        Upscaler.load(path, "cpu")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    argv = ["--weights", str(path), "--upscale", str(tmp_path / "in.png"), "--out-dir", str(tmp_path), "--device", "cpu"]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and str(path) in err


def test_third_party_bounds_hold_before_anything_is_read(tmp_path, monkeypatch):
    import sr.zoo
    path = zoo_file(tmp_path, "compact", ".safetensors")
    monkeypatch.setattr(sr.zoo, "MAX_TENSORS", 3)
    with pytest.raises(UserError, match=r"holds \d+ tensors, over the limit of 3"):
        Upscaler.load(path, "cpu")
    monkeypatch.setattr(sr.zoo, "MAX_FILE_BYTES", 1000)
    with pytest.raises(UserError, match=r"bytes, over the limit of 1,000 \(MAX_FILE_BYTES in sr/zoo.py\)"):
        Upscaler.load(zoo_file(tmp_path, "compact", ".pth"), "cpu")


def test_the_architectures_spandrel_detects_are_listed():
    import sr.zoo
    names = sr.zoo.architectures()
    assert {"ESRGAN", "RealESRGAN Compact", "SwinIR", "HAT", "SPAN"} <= set(names)
