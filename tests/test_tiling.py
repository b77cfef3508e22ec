import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
import sr.enlarge_plan
import sr.upscaler
from sr.checkpoint import save_checkpoint
from sr.protocol import quantize
from sr.upscaler import Upscaler
from sr.models import MODELS, create_model
from sr.models.srresnet import SRResNet
from sr.tiling import plan_tiles, receptive_radius, tiled_forward
from tests.conftest import smooth_image, weights_only_checkpoint


def _trained_looking(name, scale):
    """A model with random weights and non-trivial InstanceNorm affine parameters."""
    torch.manual_seed(0)
    model, kwargs = create_model(name, scale)
    for m in model.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval(), kwargs


@pytest.mark.parametrize("name", list(MODELS))
def test_tiled_equals_untiled_within_one_level(name):
    scale = 4 if MODELS[name].family == "srgan" else 3
    model, kwargs = _trained_looking(name, scale)
    input_scale = scale if MODELS[name].layout == "lr-hr" else 1
    x = torch.rand(1, kwargs["channels"], 37, 45)
    with torch.no_grad():
        whole = model(x).clamp(0, 1)
    tiled = tiled_forward(model, x, input_scale, tile=16).clamp(0, 1)
    assert tiled.shape == whole.shape
    assert (quantize(tiled) - quantize(whole)).abs().max().item() <= 1 / 255 + 1e-6
    assert (tiled - whole).abs().max().item() < 1e-4


def test_instance_norm_needs_the_whole_image_statistics():
    model, _ = _trained_looking("srresnet", 2)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        whole = model(x)
    naive = tiled_forward(model, x, 2, tile=20, radius=receptive_radius(model))
    assert (naive - whole).abs().max() < 1e-4  # the statistics pass makes tiles agree
    # Without it (a plain margin, per-tile statistics) the tiles would disagree visibly:
    with torch.no_grad():
        left = model(x[..., :, :30])[..., :, :40]
    assert (left - whole[..., :, :40]).abs().max() > 1e-3


def test_tiles_cover_the_image_once():
    tiles = plan_tiles(50, 33, 16, 5)
    covered = np.zeros((50, 33), dtype=int)
    for t in tiles:
        top, left, bottom, right = t.core
        covered[top:bottom, left:right] += 1
        assert t.region[0] == max(0, top - 5) and t.region[3] == min(33, right + 5)
    assert (covered == 1).all()


def test_eval_tile_flag_gives_the_untiled_picture(tmp_path):
    model, _ = _trained_looking("srresnet", 2)
    save_checkpoint(tmp_path / "w.pth", weights_only_checkpoint("srresnet", 2, model=model))
    Image.fromarray(smooth_image(np.random.default_rng(2), 41, 53)).save(tmp_path / "in.png")
    for tile, name in ((None, "whole.png"), (16, "tiled.png")):
        argv = ["--weights", str(tmp_path / "w.pth"), "--image", str(tmp_path / "in.png"), "--upscale",
                "--output", str(tmp_path / name), "--device", "cpu", "--no-amp"] + (["--tile", str(tile)] if tile else [])
        eval_script.main(eval_script.parse_args(argv))
    whole = np.asarray(Image.open(tmp_path / "whole.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "tiled.png")).astype(int)
    assert whole.shape == (82, 106, 3) and np.abs(whole - tiled).max() <= 1


def test_large_inputs_are_tiled_automatically(tmp_path, monkeypatch):
    model, _ = _trained_looking("srresnet-tailin", 2)
    save_checkpoint(tmp_path / "w.pth", weights_only_checkpoint("srresnet-tailin", 2, model=model))
    Image.fromarray(smooth_image(np.random.default_rng(3), 40, 40)).save(tmp_path / "in.png")
    regions, real_grid, real_features = [], sr.enlarge_plan.choose_grid, SRResNet.features
    monkeypatch.setattr(SRResNet, "features", lambda self, x: regions.append(tuple(x.shape[-2:])) or real_features(self, x))
    monkeypatch.setattr(sr.enlarge_plan, "choose_grid",  # the image's tiles 16 pixels a side; their pieces as planned
                        lambda h, w, *a: ([0, 16, 32, 40], [0, 16, 32, 40]) if (h, w) == (40, 40) else real_grid(h, w, *a))
    argv = ["--weights", str(tmp_path / "w.pth"), "--image", str(tmp_path / "in.png"), "--upscale", "--device", "cpu",
            "--no-amp"]
    probe = (sr.enlarge_plan._PROBE,) * 2  # what the plan measures the feature maps on
    eval_script.main(eval_script.parse_args([*argv, "--output", str(tmp_path / "auto.png")]))
    assert len([r for r in regions if r != probe]) == 2 * 9  # 40x40 in tiles of 16: 3 x 3, after a pass measuring its InstanceNorm
    regions.clear()
    eval_script.main(eval_script.parse_args([*argv, "--output", str(tmp_path / "whole.png"), "--tile", "1000"]))
    assert [r for r in regions if r != probe] == [(40, 40)]
    auto = np.asarray(Image.open(tmp_path / "auto.png")).astype(int)
    whole = np.asarray(Image.open(tmp_path / "whole.png")).astype(int)
    assert np.abs(auto - whole).max() <= 1


def test_the_auto_tile_limit_for_scoring_counts_lr_pixels_for_every_layout(monkeypatch):
    """A pre-upsampled model's input is scale^2 larger than the LR; the limit is on the LR."""
    monkeypatch.setattr(sr.upscaler, "AUTO_TILE_ABOVE", 30 * 30)
    calls = []
    monkeypatch.setattr(sr.upscaler, "predict", lambda *a: calls.append(a[5]) or torch.zeros(a[1].shape))  # pre-upsampled: as large
    net, _ = create_model("srcnn", 3)
    up = Upscaler(net.eval(), arch="srcnn", scale=3, color="y", layout="upsampled")
    for side in (30, 31):  # LR 30x30: at the limit; 31x31: over it
        lr = np.zeros((side, side, 3), dtype=np.uint8)
        up.score(lr, np.zeros((side * 3, side * 3, 3), dtype=np.uint8))
    assert calls == [None, sr.upscaler.AUTO_TILE]
