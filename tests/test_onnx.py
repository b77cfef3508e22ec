"""ONNX export (sr.export) and onnxruntime inference (sr.onnx_runtime) against the PyTorch models."""

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
from sr.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from sr.cli import run
from sr.errors import UserError
from sr.data.degradation import model_input
from sr.protocol import predict
from sr.export import export_onnx, main, parse_args
from sr.models import create_model
from sr.tiling import receptive_radius, tiled_forward
from sr.weights import WEIGHTS_DIR, shipped_file, shipped_names
from tests.conftest import PHOTO_HW, ROOT, smooth_image, weights_only_checkpoint

if os.environ.get("CI", "").lower() == "true":
    import onnxruntime  # noqa: F401  (CI installs the [onnx] extra: a missing one fails, never skips)
else:
    pytest.importorskip("onnxruntime", reason='pip install -e ".[onnx]"')
from sr.onnx_runtime import OnnxModel  # noqa: E402

SHIPPED = shipped_names()
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """Every shipped checkpoint exported once: name -> (PyTorch model, checkpoint dict, OnnxModel)."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name in SHIPPED:
        state = load_checkpoint(shipped_file(name))
        export_onnx(shipped_file(name), folder / f"{name}.onnx")
        out[name] = (model_from_checkpoint(state).float(), state, OnnxModel(folder / f"{name}.onnx"))
    return out


def test_every_shipped_model_is_exported(exported):
    """The tests below check every shipped model only if ``exported`` holds every weights/*.safetensors,
    each as an ONNX file that runs and gives its network's output."""
    assert len(SHIPPED) == 12 and {"fsrcnn_x3", "srcnn_x3", "srresnet_x4", "srgan_x4", "real_srresnet_x4", "real_fsrcnn_x4",
                                   "heavy_srresnet_x4", "heavy_fsrcnn_x4"} <= set(SHIPPED)
    assert set(exported) == set(SHIPPED) == {p.stem for p in WEIGHTS_DIR.glob("*.safetensors")}
    for name, (net, state, onnx_model) in exported.items():
        assert onnx_model.path.is_file() and onnx_model.path.name == f"{name}.onnx"
        x = torch.rand(1, 1 if state["color"] == "y" else 3, 11, 9)
        with torch.no_grad():
            ref = net(x)
        got = onnx_model(x)
        assert got.shape == ref.shape and (got - ref).abs().max().item() < 1e-4, name


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_gives_the_pytorch_image_within_1_255(exported, name):
    net, state, onnx_model = exported[name]
    lr = smooth_image(np.random.default_rng(1), 36, 40)  # (h, w, 3) uint8 LR, as eval.py gets it
    inputs = model_input(lr, state["scale"], state["layout"], state["color"])
    input_scale = state["scale"] if state["layout"] == "lr-hr" else 1
    ref, got = predict(net, inputs, input_scale, CPU), predict(onnx_model, inputs, input_scale, CPU)
    assert got.shape == ref.shape == (1 if state["color"] == "y" else 3, 36 * state["scale"], 40 * state["scale"])
    assert (got - ref).abs().max().item() <= 1 / 255
    assert (got - ref).abs().max().item() < 1e-4  # in fact fp32 round-off only


@pytest.mark.parametrize("name", ["fsrcnn_x3", "srcnn_x2", "srresnet_x4"])
def test_one_file_runs_any_size_and_batch(exported, name):
    net, state, onnx_model = exported[name]
    s = state["scale"] if state["layout"] == "lr-hr" else 1
    c = 1 if state["color"] == "y" else 3
    for n, h, w in [(1, 17, 23), (2, 30, 12)]:
        x = torch.rand(n, c, h, w)
        with torch.no_grad():
            ref = net(x)
        got = onnx_model(x)
        assert got.shape == ref.shape == (n, c, h * s, w * s) and got.dtype == torch.float32
        assert (got - ref).abs().max().item() < 1e-4


def test_metadata_round_trips(exported):
    for name, (net, state, onnx_model) in exported.items():
        assert (onnx_model.arch, onnx_model.scale, onnx_model.color, onnx_model.layout) == (
            state["arch"], state["scale"], state["color"], state["layout"]), name
        assert onnx_model.model_kwargs == state["model_kwargs"]
        assert onnx_model.receptive_radius == receptive_radius(net) > 1
        assert onnx_model.whole_image_norm is False
        meta = onnx_model.session.get_modelmeta().custom_metadata_map
        assert meta["format"] == "sr-onnx-v1" and meta["source"] == f"{name}.safetensors"


def test_tiled_onnx_matches_untiled_pytorch(exported):
    for name in ("fsrcnn_x3", "srcnn_x3"):
        net, state, onnx_model = exported[name]
        s = state["scale"] if state["layout"] == "lr-hr" else 1
        x = torch.rand(1, 1, 45, 38)
        with torch.no_grad():
            ref = net(x)
        got = tiled_forward(onnx_model, x, s, tile=16)  # margin from the stored receptive radius
        assert (got - ref).abs().max().item() < 1e-4, name


def test_instance_norm_model_runs_whole_but_refuses_tiles(tmp_path):
    torch.manual_seed(0)
    net, _ = create_model("fsrcnn-in", 3)
    save_checkpoint(tmp_path / "in.pth", weights_only_checkpoint("fsrcnn-in", 3, model=net))
    export_onnx(tmp_path / "in.pth", tmp_path / "in.onnx")
    onnx_model = OnnxModel(tmp_path / "in.onnx")
    assert onnx_model.whole_image_norm is True
    x = torch.rand(1, 1, 33, 27)
    with torch.no_grad():
        ref = net.eval()(x)
    assert (onnx_model(x) - ref).abs().max().item() < 1e-4
    with pytest.raises(UserError, match="InstanceNorm"):
        tiled_forward(onnx_model, x, 1, tile=16)


def test_cli_writes_a_named_default_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(parse_args(["--weights", "fsrcnn_x2"])).name == "fsrcnn_x2.onnx"
    assert OnnxModel(tmp_path / "fsrcnn_x2.onnx").scale == 2
    assert "fsrcnn-paper x2 y lr-hr" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["fsrcnn_x2.onnx"]  # no temporary file left behind


def _one_line_error(capsys, argv) -> str:
    assert run(main, lambda: parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_inputs_give_one_line(tmp_path, capsys):
    assert "no such checkpoint file or shipped weights" in _one_line_error(capsys, ["--weights", "nope_x9"])
    assert "opset 99" in _one_line_error(capsys, ["--weights", "srcnn_x2", "--output", str(tmp_path / "a.onnx"), "--opset", "99"])
    assert not (tmp_path / "a.onnx").exists()

    good = tmp_path / "good.onnx"
    export_onnx(ROOT / "weights" / "srcnn_x2.safetensors", good)
    data = good.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.onnx").write_text("not a model\n")
    for broken in ("truncated.onnx", "text.onnx", "missing.onnx"):
        with pytest.raises(UserError) as info:
            OnnxModel(tmp_path / broken)
        assert "\n" not in str(info.value) and broken in str(info.value)

    import onnx

    foreign = onnx.load(good)
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(UserError, match="not an ONNX export of this project"):
        OnnxModel(tmp_path / "foreign.onnx")


def test_missing_extra_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(UserError, match=r'pip install -e "\.\[onnx\]"'):
        OnnxModel(tmp_path / "x.onnx")
    with pytest.raises(UserError, match=r'pip install -e "\.\[onnx\]"'):
        export_onnx(ROOT / "weights" / "srcnn_x2.safetensors", tmp_path / "x.onnx")


@pytest.mark.parametrize("name", SHIPPED)
def test_eval_enlarges_with_an_onnx_file_as_with_the_checkpoint(exported, name, photo, tmp_path):
    """The enlarger issue's acceptance: eval.py --weights x.onnx gives the PyTorch (fp32) image within 1/255."""
    onnx_path = exported[name][2].path
    common = ["--image", str(photo), "--upscale", "--device", "cpu"]
    eval_script.main(eval_script.parse_args(["--weights", str(onnx_path), *common, "--output", str(tmp_path / "onnx.png")]))
    # --detail 1 --passes 1: a named photo model follows what the file shows (this PNG reads as blocky); the ONNX file runs as it is
    eval_script.main(eval_script.parse_args(["--weights", name, "--no-amp", "--detail", "1", "--passes", "1", *common,
                                             "--output", str(tmp_path / "torch.png")]))
    got, ref = (np.asarray(Image.open(tmp_path / f)).astype(int) for f in ("onnx.png", "torch.png"))
    scale, (h, w) = exported[name][1]["scale"], PHOTO_HW
    assert got.shape == ref.shape == (h * scale, w * scale, 3)
    assert np.abs(got - ref).max() <= 1


def test_eval_scores_an_onnx_file_and_refuses_amp_for_it(exported, image_folders):
    onnx_path = exported["fsrcnn_x3"][2].path
    argv = ["--dataset", str(image_folders["eval"]), "--device", "cpu"]
    onnx = eval_script.main(eval_script.parse_args(["--weights", str(onnx_path), *argv]))
    torch_ = eval_script.main(eval_script.parse_args(["--weights", "fsrcnn_x3", *argv]))
    assert onnx["model_mean"]["psnr"] == pytest.approx(torch_["model_mean"]["psnr"], abs=1e-3)
    with pytest.raises(UserError, match="ONNX model runs in fp32"):
        eval_script.main(eval_script.parse_args(["--weights", str(onnx_path), "--amp", *argv]))


def test_onnx_metadata_passes_the_same_field_checks_as_a_checkpoint(tmp_path):
    # Issue 21, row 5: scale=0 ended in a ZeroDivisionError traceback, layout=upsampled on an
    # LR model in a broadcast traceback, and color=purple was accepted.
    import onnx

    good = tmp_path / "good.onnx"
    export_onnx(ROOT / "weights" / "fsrcnn_x3.safetensors", good)
    cases = {
        "scale": ("0", r"ONNX metadata field 'scale' is 0; it must be an integer >= 2"),
        "layout": ("upsampled", r"ONNX metadata field 'layout' is 'upsampled', but fsrcnn-paper is an 'lr-hr' model"),
        "color": ("purple", r"ONNX metadata field 'color' is 'purple'; it must be one of 'y', 'rgb'"),
        "model_kwargs": ('{"channels": 1, "d": 56, "m": 1000000, "s": 12, "scale": 3}', r"give FSRCNN 1,320,007,529 parameters, over the limit"),
        "receptive_radius": ("-4", r"'receptive_radius' is -4; it must be from 0 to 1024"),
    }
    for key, (value, message) in cases.items():
        proto = onnx.load(good)
        for prop in proto.metadata_props:
            if prop.key == key:
                prop.value = value
        onnx.save(proto, tmp_path / "bad.onnx")
        with pytest.raises(UserError, match=message) as info:
            OnnxModel(tmp_path / "bad.onnx")
        assert "\n" not in str(info.value), key


def _resize_graph(path, factor: float, scale: int = 3) -> None:
    """An ONNX file with valid fsrcnn_x3 metadata whose graph is one nearest-neighbour Resize by ``factor``."""
    import onnx
    from onnx import TensorProto, helper

    state = load_checkpoint(ROOT / "weights" / "fsrcnn_x3.safetensors")
    graph = helper.make_graph(
        [helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")], "resize",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 1, "H", "W"])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, factor, factor])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    meta = dict(format="sr-onnx-v1", arch=state["arch"], model_kwargs=json.dumps(dict(state["model_kwargs"], scale=scale)),
                scale=str(scale), color=state["color"], layout=state["layout"], receptive_radius="6", whole_image_norm="false")
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, path)


def test_a_graph_that_does_not_enlarge_by_its_scale_is_refused_at_load(tmp_path, photo, capsys):
    # Issue 32, row 5: a graph that upsampled 2000x under x3 metadata gave a wrong image with exit 0
    # (--upscale) or an onnxruntime allocation traceback (--dataset).
    _resize_graph(tmp_path / "x2000.onnx", 2000.0)
    _resize_graph(tmp_path / "x3.onnx", 3.0)
    assert OnnxModel(tmp_path / "x3.onnx")(torch.rand(1, 1, 5, 7)).shape == (1, 1, 15, 21)  # what x3 promises
    with pytest.raises(UserError, match=r"x2000.onnx: its graph turns a 3x2 input into 6000x4000, not the 9x6 "
                                        r"that x3 \(lr-hr\) gives") as info:
        OnnxModel(tmp_path / "x2000.onnx")
    assert "\n" not in str(info.value)
    argv = ["--weights", str(tmp_path / "x2000.onnx"), "--upscale", str(photo), "--out-dir", str(tmp_path)]
    assert run(eval_script.main, lambda: eval_script.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the 9x6" in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("photo*"))


def test_an_onnxruntime_failure_while_running_is_one_line(tmp_path, monkeypatch):
    _resize_graph(tmp_path / "x3.onnx", 3.0)
    model = OnnxModel(tmp_path / "x3.onnx")

    def failing_run(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running "
                           "Resize node. Failed to allocate memory for requested buffer of size 96000000000\n  at ...")

    monkeypatch.setattr(model, "session", SimpleNamespace(run=failing_run))
    with pytest.raises(UserError, match=r"x3.onnx: onnxruntime failed on a 1x1x5x7 input \(Non-zero status code .*") as info:
        model(torch.rand(1, 1, 5, 7))
    assert "\n" not in str(info.value)
