"""sr.upscaler: one loaded model that enlarges photos (sr.enlarge, from float input) and scores images (sr.evaluation)."""

import ast

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.color import rgb_to_y
from sr.errors import UserError
from sr.data.degradation import model_input, to_uint8
from sr.data.h5 import load_eval_set
from sr.protocol import predict, score, to_rgb_image
from sr.data.degradation import downscale, upscale
from sr.imresize import imresize
from sr.evaluation import evaluate_image
from sr.enlarge import enlarge
from sr.upscaler import Upscaler
from sr.models import MODELS
from sr.training.loop import evaluate
from sr.weights import resolve_weights, shipped_file, shipped_names
from sr.photo import Photo, read_photo
from tests.conftest import ROOT, make_h5, smooth_image

RNG = np.random.default_rng(0)


class Recorder(nn.Module):
    """A stand-in network: records its input and enlarges by nearest neighbour (``factor``)."""

    def __init__(self, factor: int):
        super().__init__()
        self.factor, self.seen = factor, []

    def forward(self, x):
        self.seen.append(x.clone())
        return x.repeat_interleave(self.factor, dim=-2).repeat_interleave(self.factor, dim=-1)


def test_weights_resolve_by_path_or_shipped_name(tmp_path):
    assert resolve_weights("fsrcnn_x3") == ROOT / "weights" / "fsrcnn_x3.safetensors"
    assert resolve_weights("fsrcnn_x3.pth") == ROOT / "weights" / "fsrcnn_x3.safetensors"  # an old name still finds it
    assert resolve_weights(ROOT / "weights" / "srcnn_x2.safetensors") == ROOT / "weights" / "srcnn_x2.safetensors"
    assert "srresnet_x4" in shipped_names()
    with pytest.raises(UserError, match=r"nope_x3: no such checkpoint file or shipped weights \(shipped: fsrcnn_x2, "):
        resolve_weights("nope_x3")
    with pytest.raises(UserError, match="no such checkpoint file or shipped weights$"):
        resolve_weights("fsrcnn_x3", weights_dir=tmp_path)  # an empty weights folder names none


def test_load_knows_the_checkpoint_and_the_precision():
    up = Upscaler.load("fsrcnn_x3", "cpu", amp=False)
    assert (up.arch, up.scale, up.color, up.layout, up.input_scale) == ("fsrcnn-paper", 3, "y", "lr-hr", 3)
    assert up.precision.name == "fp32" and up.precision.channels_last
    assert up.describe().startswith("fsrcnn-paper x3 (y, lr-hr) from ") and "fp32" in up.describe()
    assert Upscaler.load("srcnn_x2", "cpu", amp=True).precision.name == "bf16"


@pytest.mark.parametrize("name,layout", [("srcnn_x3", "upsampled"), ("fsrcnn_x3", "lr-hr")])
def test_upscaler_scores_an_eval_file_as_training_evaluates_it(tmp_path, image_folders, name, layout):
    """eval.py's scoring (Upscaler.score, from the LR image) gives the PSNR/SSIM that training's
    ``evaluate`` prints each epoch (from the model input prepare_h5.py stored), image by image and on average."""
    _, eval_file = make_h5(tmp_path, image_folders, 3, "--layout", layout)
    attrs, images = load_eval_set(eval_file)
    up = Upscaler.load(name, "cpu", amp=False)
    assert (attrs["layout"], attrs["color"]) == (up.layout, up.color) and len(images) == 3
    state = load_checkpoint(shipped_file(name))
    net = model_from_checkpoint(state)  # the plain module, as a run scores it
    input_scale, cpu, results = MODELS[state["arch"]].input_scale(3), torch.device("cpu"), []  # as train_srcnn.py calls evaluate
    for image in images:
        lr = downscale(image.hr, 3)
        assert np.array_equal(model_input(lr, 3, up.layout, up.color), image.inputs)  # the stored input is the LR's
        result = up.score(lr, image.hr)
        pred = predict(net, image.inputs, input_scale, cpu)
        assert result.scores == pytest.approx(evaluate(net, [image], 3, input_scale, cpu), abs=1e-6)
        assert result.scores == pytest.approx(score(pred, image.hr, 3), abs=1e-6)
        assert np.abs(result.image.astype(int) - to_rgb_image(pred, upscale(lr, 3))).max() <= 1
        results.append(result.scores)
    mean = {k: sum(r[k] for r in results) / len(results) for k in results[0]}
    assert mean == pytest.approx(evaluate(net, images, 3, input_scale, cpu), abs=1e-6)


def test_enlarge_computes_from_float_input_for_upsampled_y_models():
    """Pre-upsampling and Y stay unrounded; the colour is the model's Y with bicubic chroma."""
    net = Recorder(1)
    up = Upscaler(net, arch="fake", scale=2, color="y", layout="upsampled")
    rgb = RNG.uniform(0, 255, (9, 7, 3))
    big, _ = enlarge(up, Photo(rgb=rgb))
    bicubic = imresize(rgb, 2)
    (seen,) = net.seen
    assert seen.shape == (1, 1, 18, 14) and seen.dtype == torch.float32
    assert np.allclose(seen[0, 0].numpy(), rgb_to_y(bicubic) / 255, atol=1e-6)
    assert np.abs(seen.numpy() * 255 - np.round(seen.numpy() * 255)).max() > 0.1  # not 8-bit levels
    # The identity "model" gives back bicubic's own Y, so the picture is the bicubic enlargement.
    assert np.abs(np.asarray(big) - np.clip(bicubic, 0, 255)).max() <= 0.5 + 1e-3


def test_enlarge_rgb_lr_hr_models_and_sixteen_bit_photos(tmp_path):
    up = Upscaler(Recorder(2), arch="fake", scale=2, color="rgb", layout="lr-hr")
    rgb = RNG.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    assert np.array_equal(np.asarray(enlarge(up, Photo(rgb=rgb))[0]), rgb.repeat(2, axis=0).repeat(2, axis=1))
    values = (40000 + RNG.integers(0, 200, (6, 5))).astype(np.uint16)  # neighbours closer than one 8-bit step
    Image.fromarray(values).save(tmp_path / "g16.png")
    big, kind = enlarge(up, read_photo(tmp_path / "g16.png", compact=True))
    assert kind.mode == "I;16"
    assert np.array_equal(np.asarray(big), values.repeat(2, axis=0).repeat(2, axis=1))


def test_bicubic_upscaler_resizes_once():
    up = Upscaler.bicubic(3)
    rgb = RNG.uniform(0, 255, (8, 10, 3))
    big, _ = enlarge(up, Photo(rgb=rgb), outscale=2.5)
    assert np.array_equal(np.asarray(big), to_uint8(np.clip(imresize(rgb, size=(20, 25)), 0, 255)))  # one resize, not two


def test_evaluate_image_scores_both_and_checks_the_scale(tmp_path):
    Image.fromarray(smooth_image(RNG, 40, 42)).save(tmp_path / "gt.png")
    up = Upscaler.load("fsrcnn_x2", "cpu", amp=False)
    e = evaluate_image(tmp_path / "gt.png", 2, up, protocol="matlab")
    assert e.hr.shape == (40, 42, 3) and e.model.image.shape == (40, 42, 3)
    assert e.model.scores["psnr"] > e.bicubic.scores["psnr"]
    assert evaluate_image(tmp_path / "gt.png", 2, up, jpeg=30).bicubic.scores["psnr"] < e.bicubic.scores["psnr"] - 1
    assert evaluate_image(tmp_path / "gt.png", 2).model is None
    with pytest.raises(ValueError, match="x2, asked to evaluate at x3"):
        evaluate_image(tmp_path / "gt.png", 3, up)


@pytest.mark.parametrize("path", ["experiments/showcase.py", "bench/bench_infer.py"])
def test_experiments_and_benches_import_only_the_package(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"eval", "train_srcnn", "train_srgan", "prepare_h5"}
    assert "sys.path" not in (ROOT / path).read_text()


@pytest.mark.parametrize("name,scale", [("fsrcnn-paper", 2), ("fsrcnn-paper", 3), ("fsrcnn-paper", 4), ("fsrcnn-paper", 8),
                                        ("fsrcnn", 3), ("srresnet-noin", 2), ("srresnet-noin", 4), ("srresnet-noin", 8),
                                        ("srresnet", 4)])
def test_for_inference_is_the_same_function(name, scale):
    """The sub-pixel rewrites change speed, not results (and FSRCNN's tiles agree with its new margin)."""
    import copy

    from sr.models import create_model
    from sr.tiling import receptive_radius, tiled_forward
    from sr.models.inference_forms import for_inference

    torch.manual_seed(0)
    net, kwargs = create_model(name, scale)
    for m in net.modules():
        if isinstance(m, nn.InstanceNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    net.eval()
    fast = for_inference(copy.deepcopy(net))
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in fast.modules())
    x = torch.rand(2, kwargs["channels"], 23, 17)
    with torch.no_grad():
        ref, got = net(x), fast(x)
    assert got.shape == ref.shape and (got - ref).abs().max().item() < 1e-5
    assert receptive_radius(fast) <= receptive_radius(net)
    if name.startswith("fsrcnn"):  # the rewritten deconv reports a tighter margin: tiles must still agree
        tiled = tiled_forward(fast, x[:1], scale if name == "fsrcnn-paper" else 1, tile=5)
        assert (tiled - ref[:1]).abs().max().item() < 1e-4


def test_nothing_below_the_enlarger_imports_it():
    """The layers: weights policy, layer forms, the forward, tile sizes and scoring never import the
    enlarger (sr.enlarge), and only the enlarger imports the loaded model (sr.upscaler): the others
    name it in annotations only."""
    importers = {"sr.enlarge": set(), "sr.upscaler": {"enlarge.py"}}
    for path in sorted((ROOT / "sr").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []  # annotations only
        names = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        names |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        for module, allowed in importers.items():
            assert module not in names or path.name in allowed, (path, module)


def test_a_y_models_scored_picture_is_the_one_the_enlarger_writes():
    """eval.py --image (Upscaler.score) and --upscale (enlarge) colour a Y model's output with the same
    chroma: the unrounded bicubic's, not that of a bicubic first rounded and clipped to 8 bits, which
    is several levels off at saturated edges. (An lr-hr model: an upsampled one is scored from the
    rounded bicubic training stored, on purpose, and enlarged from the unrounded one.)"""
    name = "fsrcnn_x3"
    rgb = np.zeros((24, 30, 3), dtype=np.uint8)
    rgb[:, ::6] = (255, 0, 0)  # saturated stripes: bicubic overshoots past 0 and 255 beside them
    rgb[::5, :, 2] = 255
    up = Upscaler.load(name, "cpu", amp=False)
    scored = up.score(rgb, np.zeros((72, 90, 3), dtype=np.uint8)).image
    enlarged, _ = enlarge(up, Photo(rgb=rgb))
    assert np.abs(scored.astype(int) - np.asarray(enlarged).astype(int)).max() <= 1
