"""sr.streaming: the tile-by-tile photo path gives the whole-image path's picture, within 1/255."""

import numpy as np
import pytest
import torch
from PIL import Image

from sr.imresize import imresize, resize_span, source_span
from sr.inference import Upscaler
from sr.models import MODELS, create_model
from sr.photo import output_kind, read_photo, write_photo
from sr.streaming import auto_tile, enlarge_streaming
from tests.conftest import ROOT, smooth_image

RNG = np.random.default_rng(11)


def _upscaler(arch: str, scale: int, color: str | None = None, tile: int | None = None) -> Upscaler:
    torch.manual_seed(0)
    net, _ = create_model(arch, scale, color)
    for m in net.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    spec = MODELS[arch]
    return Upscaler(net.eval(), arch=arch, scale=scale, color=color or spec.color, layout=spec.layout, tile=tile)


def _files(folder):
    """One small file of each kind the enlarger keeps: RGB, RGBA, grey, 16-bit grey."""
    folder.mkdir(exist_ok=True)
    rgb = smooth_image(RNG, 23, 29)
    Image.fromarray(rgb).save(folder / "rgb.png")
    alpha = np.tile(np.linspace(0, 255, 29).astype(np.uint8), (23, 1))
    alpha[:5, :7] = 0  # a fully transparent corner: its colour is filled from the visible pixels
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    Image.fromarray(rgb[..., 1]).save(folder / "grey.png")
    grey16 = (rgb[..., 0].astype(np.uint16) * 257 + RNG.integers(0, 257, (23, 29))).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    return folder


def _compare(up: Upscaler, path, fmt="png", outscale=None, alpha_upsampler="bicubic", tmp=None):
    """Max difference between the streamed image and the whole-image path's written one, in 8-bit steps."""
    whole = up.enlarge_photo(read_photo(path), outscale, alpha_upsampler)
    write_photo(tmp / f"whole.{fmt}", whole, format=fmt)
    streamed, kind = up.enlarge_image(read_photo(path, compact=True), fmt, outscale, alpha_upsampler)
    expected = np.asarray(Image.open(tmp / f"whole.{fmt}")) if fmt == "png" else None
    got = np.asarray(streamed)
    if fmt != "png":  # lossy: compare the pixels before encoding
        from sr.photo import _image_for

        expected = np.asarray(_image_for(whole, output_kind(whole, fmt)))
    assert got.shape == expected.shape and streamed.mode == kind.mode
    step = 257 if kind.mode == "I;16" else 1
    return np.abs(got.astype(np.int64) - expected.astype(np.int64)).max() / step


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("kinds"))


# Y and RGB models, both layouts; tiles of 10 model-input pixels (many tiles, each with its margins).
CASES = [("fsrcnn-paper", 3, None, 10), ("srcnn", 2, None, 10), ("srcnn", 2, "rgb", 10), ("srresnet-noin", 2, None, 10)]


@pytest.mark.parametrize("arch,scale,color,tile", CASES)
@pytest.mark.parametrize("kind", ["rgb.png", "rgba.png", "grey.png", "grey16.png"])
def test_streamed_equals_whole_image_for_every_kind_and_model(files, tmp_path, arch, scale, color, tile, kind):
    up = _upscaler(arch, scale, color, tile=tile)
    for outscale in (None, 3.7, 1.5):  # above and below the model's scale
        assert _compare(up, files / kind, outscale=outscale, tmp=tmp_path) <= 1, outscale


@pytest.mark.parametrize("arch", ["srresnet", "fsrcnn-in"])
def test_instance_norm_models_stream_with_whole_image_statistics(files, tmp_path, arch):
    up = _upscaler(arch, 2, tile=16)
    assert _compare(up, files / "rgb.png", outscale=3.0, tmp=tmp_path) <= 1


def test_model_alpha_jpeg_composite_and_webp_grey(files, tmp_path):
    up = _upscaler("fsrcnn-paper", 2, tile=6)
    assert _compare(up, files / "rgba.png", alpha_upsampler="model", outscale=2.5, tmp=tmp_path) <= 1
    assert _compare(up, files / "rgba.png", fmt="jpg", tmp=tmp_path) <= 1  # composited over white
    assert _compare(up, files / "grey.png", fmt="webp", tmp=tmp_path) <= 1  # written as RGB


def test_plain_bicubic_is_bit_for_bit(files, tmp_path):
    up = Upscaler.bicubic(3)
    up.tile = 5
    assert _compare(up, files / "rgb.png", outscale=2.2, tmp=tmp_path) == 0
    assert _compare(up, files / "grey16.png", tmp=tmp_path) == 0


def test_onnx_streams_like_pytorch(files, tmp_path):
    pytest.importorskip("onnxruntime")
    from sr.export import export_onnx

    export_onnx(ROOT / "weights" / "fsrcnn_x2.safetensors", tmp_path / "f.onnx")
    onnx, torch_up = Upscaler.load(tmp_path / "f.onnx", tile=9), Upscaler.load("fsrcnn_x2", amp=False)
    for outscale in (None, 3.0):
        streamed = np.asarray(onnx.enlarge_image(read_photo(files / "rgb.png", compact=True), "png", outscale)[0])
        whole = torch_up.enlarge_photo(read_photo(files / "rgb.png"), outscale)
        write_photo(tmp_path / "w.png", whole)
        assert np.abs(streamed.astype(int) - np.asarray(Image.open(tmp_path / "w.png")).astype(int)).max() <= 1


def test_a_piece_of_a_resize_is_that_piece_of_the_whole():
    img = RNG.uniform(0, 255, (37, 29))
    for out_h in (111, 80, 20):  # enlarging by a whole factor, by a size, shrinking (antialiased)
        whole = imresize(img, size=(out_h, 29))  # the columns keep their length: only the rows are resized
        lo, hi = source_span(37, out_h, out_h / 37, 4, 17)
        piece = resize_span(img[lo:hi], 0, 37, out_h, out_h / 37, 4, 17, lo)
        assert np.array_equal(piece, whole[4:17])


def test_the_automatic_tile_fits_the_model():
    """SRResNet x4's 256-channel maps at twice the LR size need small tiles; FSRCNN affords larger ones."""
    srresnet, _ = create_model("srresnet-noin", 4)
    fsrcnn, _ = create_model("fsrcnn-paper", 4)
    small, large = auto_tile(srresnet.eval(), "rgb", 4, 4), auto_tile(fsrcnn.eval(), "y", 4, 4)
    assert 48 <= small < large <= 400


def test_large_images_are_tiled_and_show_a_tile_bar(tmp_path, capsys, monkeypatch):
    import sr.streaming

    monkeypatch.setattr(sr.streaming, "AUTO_TILE_ABOVE", 30 * 30)
    monkeypatch.setattr(sr.streaming, "STAGE_BUDGET", 100 * 64 * 64)  # tiles of 32 LR pixels at x2
    Image.fromarray(smooth_image(RNG, 70, 40)).save(tmp_path / "in.png")
    up = Upscaler.load("fsrcnn_x2", amp=False)
    image, _ = enlarge_streaming(up, read_photo(tmp_path / "in.png", compact=True), "png", progress=True)
    assert "tiles" in capsys.readouterr().err
    whole = up.enlarge_photo(read_photo(tmp_path / "in.png"))
    write_photo(tmp_path / "w.png", whole)
    assert np.abs(np.asarray(image).astype(int) - np.asarray(Image.open(tmp_path / "w.png")).astype(int)).max() <= 1
