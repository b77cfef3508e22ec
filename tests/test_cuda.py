"""The CUDA paths: run where a GPU is present (bench/gpu_check.sh runs them); skipped elsewhere."""

import pytest
import torch

import eval as eval_script
import train_srcnn
import train_srgan
from sr.checkpoint import load_checkpoint, save_checkpoint
from sr.models import create_model
from sr.tiling import tiled_forward
from tests.conftest import make_h5, weights_only_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("extra", [["--no-amp"], ["--amp"], ["--amp", "--amp-dtype", "fp16"], ["--amp", "--channels-last"],
                                   ["--amp", "--compile"]])
def test_training_on_cuda(tmp_path, h5_x3, image_folders, extra, capsys):
    train, evaluation = h5_x3
    result = train_srcnn.main(train_srcnn.parse_args(["--train", str(train), "--eval", str(evaluation), "--device", "cuda",
                                                      "--arch", "fsrcnn", "--epochs", "2", "--batch-size", "16",
                                                      "--out", str(tmp_path / "run"), *extra]))
    assert "held on the GPU" in capsys.readouterr().out  # the patches fit: batches are indexed on the device
    state = load_checkpoint(tmp_path / "run" / "last.pth")
    assert state["epoch"] == 2 and all(v.device.type == "cpu" for v in state["model"].values())
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in state["model"])  # the bare module, compiled or not
    # The best PSNR the run printed is what eval.py gives its best.pth: a real score, not a placeholder.
    summary = eval_script.main(eval_script.parse_args(["--weights", str(tmp_path / "run" / "best.pth"), "--dataset",
                                                       str(image_folders["eval"]), "--device", "cuda"]))
    assert summary["model_mean"]["psnr"] == pytest.approx(result["best_psnr"], abs=0.01)


def test_gan_phase_on_cuda_with_fp16(tmp_path, image_folders):
    train, evaluation = make_h5(tmp_path, image_folders, 2, "--layout", "lr-hr", "--color", "rgb", "--patch-size", "32",
                                "--stride", "16")
    data = ["--train", str(train), "--eval", str(evaluation), "--batch-size", "8", "--epochs", "1", "--device", "cuda"]
    train_srgan.main(train_srgan.parse_args([*data, "--arch", "srresnet-noin", "--scale", "2", "--out", str(tmp_path / "pre")]))
    train_srgan.main(train_srgan.parse_args([*data, "--phase", "gan", "--generator", str(tmp_path / "pre" / "last.pth"),
                                             "--amp-dtype", "fp16", "--out", str(tmp_path / "gan")]))
    assert load_checkpoint(tmp_path / "gan" / "last.pth")["epoch"] == 1


def test_cuda_and_cpu_agree_and_tiles_match():
    torch.manual_seed(0)
    model, _ = create_model("srresnet", 4)
    model.eval()
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda())
    assert (gpu.cpu() - cpu).abs().max() < 1e-3
    tiled = tiled_forward(model, x.cuda(), 4, tile=16)
    assert (tiled - gpu).abs().max() < 1e-3


def test_eval_on_cuda(tmp_path, image_folders):
    save_checkpoint(tmp_path / "w.pth", weights_only_checkpoint("fsrcnn-paper", 3))
    scores = {}
    for device in ("cpu", "cuda"):
        summary = eval_script.main(eval_script.parse_args(["--weights", str(tmp_path / "w.pth"), "--dataset",
                                                           str(image_folders["eval"]), "--device", device]))
        scores[device] = summary["model_mean"]["psnr"]
    assert scores["cuda"] == pytest.approx(scores["cpu"], abs=0.01)
