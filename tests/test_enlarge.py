"""sr.enlarge and sr.enlarge_plan: the tile-by-tile enlarger gives the whole-image picture
(tests/whole_image.py, the oracle) within 1/255, in tiles sized by what they hold."""

import numpy as np
import pytest
import torch
from PIL import Image

import sr.enlarge_plan
from sr.enlarge import enlarge
from sr.enlarge_plan import Parts, activation_budget, choose_grid, plan, tile_costs
from sr.imresize import imresize, resize_span, source_span
from sr.models import MODELS, create_model
from sr.models.inference_forms import for_inference
from sr.models.self_ensemble import SelfEnsemble
from sr.models.srresnet import SRResNet
from sr.photo import read_photo
from sr.photo_write import output_kind, write_photo
from sr.upscaler import Upscaler
from tests.conftest import ROOT, smooth_image
from tests.whole_image import enlarge_whole

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
    """Max difference between the tiled image and the whole-image oracle's written one, in 8-bit steps."""
    whole = enlarge_whole(up, read_photo(path), outscale, alpha_upsampler)
    write_photo(tmp / f"whole.{fmt}", whole, format=fmt)
    tiled, kind = enlarge(up, read_photo(path, compact=True), fmt, outscale, alpha_upsampler)
    expected = np.asarray(Image.open(tmp / f"whole.{fmt}")) if fmt == "png" else None
    got = np.asarray(tiled)
    if fmt != "png":  # lossy: compare the pixels before encoding
        from sr.photo_write import _image_for

        expected = np.asarray(_image_for(whole, output_kind(whole, fmt)))
    assert got.shape == expected.shape and tiled.mode == kind.mode
    step = 257 if kind.mode == "I;16" else 1
    return np.abs(got.astype(np.int64) - expected.astype(np.int64)).max() / step


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("kinds"))


@pytest.fixture
def small_budgets(monkeypatch):
    """Budgets that cut a test image into many tiles and pieces."""
    monkeypatch.setattr(sr.enlarge_plan, "ACTIVATION_BUDGET", 3 * 10**5)
    monkeypatch.setattr(sr.enlarge_plan, "STAGE_BUDGET", 2 * 10**5)
    monkeypatch.setattr(sr.enlarge_plan, "MIN_TILE", 6)


# Y and RGB models, both layouts; the whole network on tiles of 10 model-input pixels (many tiles, each with its margins).
CASES = [("fsrcnn-paper", 3, None, 10), ("srcnn", 2, None, 10), ("srcnn", 2, "rgb", 10), ("srresnet-noin", 2, None, 10)]


@pytest.mark.parametrize("arch,scale,color,tile", CASES)
@pytest.mark.parametrize("kind", ["rgb.png", "rgba.png", "grey.png", "grey16.png"])
def test_tiled_equals_whole_image_for_every_kind_and_model(files, tmp_path, arch, scale, color, tile, kind):
    up = _upscaler(arch, scale, color, tile=tile)
    for outscale in (None, 3.7, 1.5):  # above and below the model's scale
        assert _compare(up, files / kind, outscale=outscale, tmp=tmp_path) <= 1, outscale


@pytest.mark.parametrize("arch,scale,color,tile", [CASES[0], CASES[3]])
def test_a_pull_toward_bicubic_tiles_like_the_whole_image(files, tmp_path, arch, scale, color, tile):
    """Anchor.detail below 1, a Y model and an RGB one: the tiled pieces pull toward the same
    bicubic as the whole image does, and the pull changes the picture."""
    up = _upscaler(arch, scale, color, tile=tile)
    plain = np.asarray(enlarge(up, read_photo(files / "rgb.png", compact=True), "png")[0]).astype(int)
    up.detail = 0.5
    assert _compare(up, files / "rgb.png", outscale=3.7, tmp=tmp_path) <= 1
    pulled = np.asarray(enlarge(up, read_photo(files / "rgb.png", compact=True), "png")[0]).astype(int)
    assert np.abs(pulled - plain).max() > 2


@pytest.mark.parametrize("arch,color", [("srresnet-noin", None), ("fsrcnn-paper", None)])
def test_self_ensemble_passes_tile_like_the_whole_image(files, tmp_path, small_budgets, arch, color):
    """Anchor.passes on SRResNet (whose body and tail the enlarger otherwise runs apart) and on a Y
    model: the tiles of the averaged network give the whole image's averaged picture, on many tiles."""
    up = _upscaler(arch, 2, color)
    plain = np.asarray(enlarge(up, read_photo(files / "rgb.png", compact=True), "png")[0]).astype(int)
    up.net = SelfEnsemble(up.net, 2)
    parts = Parts.of(up)
    assert (parts.tail is not None) == (arch == "srresnet-noin")  # SRResNet's body and tail stay apart
    assert len(plan(up, parts, 23, 29, 3.7**2)) > 1
    assert _compare(up, files / "rgb.png", outscale=3.7, tmp=tmp_path) <= 1
    two = np.asarray(enlarge(up, read_photo(files / "rgb.png", compact=True), "png")[0]).astype(int)
    assert np.abs(two - plain).max() > 2  # a randomly initialised network is far from mirror-blind


@pytest.mark.parametrize("arch", ["srresnet", "fsrcnn-in"])
@pytest.mark.parametrize("tile", [16, None])
def test_instance_norm_models_tile_with_whole_image_statistics(files, tmp_path, arch, tile, small_budgets, monkeypatch):
    monkeypatch.setattr(sr.enlarge_plan, "MIN_TILE", 12)  # two tiles: each costs a statistics pass per norm layer
    up = _upscaler(arch, 2, tile=tile)  # None: SRResNet's body and tail apart, on the small budgets' tiles
    assert len(plan(up, Parts.of(up), 23, 29, 9)) > 1
    assert _compare(up, files / "rgb.png", outscale=3.0, tmp=tmp_path) <= 1


def test_model_alpha_jpeg_composite_and_webp_grey(files, tmp_path):
    up = _upscaler("fsrcnn-paper", 2, tile=6)
    assert _compare(up, files / "rgba.png", alpha_upsampler="model", outscale=2.5, tmp=tmp_path) <= 1
    assert _compare(up, files / "rgba.png", fmt="jpg", tmp=tmp_path) <= 1  # composited over white
    assert _compare(up, files / "grey.png", fmt="webp", tmp=tmp_path) <= 1  # written as RGB


def test_plain_bicubic_is_bit_for_bit(files, tmp_path, small_budgets):
    up = Upscaler.bicubic(3)
    assert len(plan(up, Parts.of(up), 23, 29, 2.2**2)[0].pieces) > 1
    assert _compare(up, files / "rgb.png", outscale=2.2, tmp=tmp_path) == 0
    assert _compare(up, files / "grey16.png", tmp=tmp_path) == 0


def test_onnx_tiles_like_pytorch(files, tmp_path):
    pytest.importorskip("onnxruntime")
    from sr.export import export_onnx

    export_onnx(ROOT / "weights" / "fsrcnn_x2.safetensors", tmp_path / "f.onnx")
    onnx, torch_up = Upscaler.load(tmp_path / "f.onnx", tile=9), Upscaler.load("fsrcnn_x2", amp=False)
    for outscale in (None, 3.0):
        tiled = np.asarray(enlarge(onnx, read_photo(files / "rgb.png", compact=True), "png", outscale)[0])
        write_photo(tmp_path / "w.png", enlarge_whole(torch_up, read_photo(files / "rgb.png"), outscale))
        assert np.abs(tiled.astype(int) - np.asarray(Image.open(tmp_path / "w.png")).astype(int)).max() <= 1


def test_a_piece_of_a_resize_is_that_piece_of_the_whole():
    img = RNG.uniform(0, 255, (37, 29))
    for out_h in (111, 80, 20):  # enlarging by a whole factor, by a size, shrinking (antialiased)
        whole = imresize(img, size=(out_h, 29))  # the columns keep their length: only the rows are resized
        lo, hi = source_span(37, out_h, out_h / 37, 4, 17)
        piece = resize_span(img[lo:hi], 0, 37, out_h, out_h / 37, 4, 17, lo)
        assert np.array_equal(piece, whole[4:17])


# ---------------------------------------------------------------------- SRResNet's body and tail apart


def test_srresnet_body_and_tail_in_their_own_tiles_give_the_whole_image(tmp_path, monkeypatch, small_budgets):
    """The shipped model on a strip wide enough for tiles whose margins matter; with the tail's
    margin cut by two pixels the pieces' seams show, so the comparison would catch a cut margin."""
    monkeypatch.setattr(sr.enlarge_plan, "ACTIVATION_BUDGET", 3 * 10**6)  # body tiles about 60 LR pixels wide
    monkeypatch.setattr(sr.enlarge_plan, "STAGE_BUDGET", 10**6)  # pieces of a few hundred LR pixels
    Image.fromarray(smooth_image(RNG, 20, 160)).save(tmp_path / "strip.png")
    up = Upscaler.load("srresnet_x4", amp=False)
    parts = Parts.of(up)
    tiles = plan(up, parts, 20, 160, 16)
    assert parts.tail is not None and len(tiles) > 1 and any(len(t.pieces) > 1 for t in tiles)
    assert _compare(up, tmp_path / "strip.png", tmp=tmp_path) <= 1
    monkeypatch.setattr(Parts, "of", classmethod(lambda cls, u: parts._replace(tail_margin=parts.tail_margin - 2)))
    assert _compare(up, tmp_path / "strip.png", tmp=tmp_path) > 1


def _reach(part, channels: int, side: int = 41) -> int:
    """How far (in input pixels) the centre output pixel of ``part`` sees: its gradient's support."""
    x = torch.rand(1, channels, side, side, dtype=torch.float64, requires_grad=True)
    out = part(x)
    centre = out.shape[-1] // 2
    out[0, :, centre, centre].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
    return int(max(side // 2 - rows.min(), rows.max() - side // 2))


@pytest.mark.parametrize("scale", [2, 4])
def test_each_margin_covers_what_its_part_sees(scale):
    """Every input pixel that can change an output pixel lies within the margin of the part that
    computes it (a smaller margin would change pixels near a seam), and the margin is no wider than that, plus one."""
    torch.manual_seed(0)
    net = for_inference(SRResNet(features=8, blocks=4, scale=scale, norm="none")).double().eval()
    parts = Parts.of(Upscaler(net, arch="srresnet-noin", scale=scale))
    assert parts.body_margin - 1 <= _reach(parts.body, 3) <= parts.body_margin
    assert parts.tail_margin - 1 <= _reach(parts.tail, 8) <= parts.tail_margin


# ---------------------------------------------------------------------- tile sizes


def test_tiles_are_sized_by_what_they_hold():
    """SRResNet's body holds 64-channel maps at the LR size, its tail 256 channels at twice the LR
    size: a tail piece costs several times a body tile per pixel, and FSRCNN less than either."""
    srresnet, fsrcnn = Upscaler.load("srresnet_x4", amp=False), Upscaler.load("fsrcnn_x4", amp=False)
    (body, tail), (whole, _) = tile_costs(srresnet, Parts.of(srresnet)), tile_costs(fsrcnn, Parts.of(fsrcnn))
    # Body: the skip, a block's input and its two convolutions' outputs, 64 float32 channels each, and the features kept.
    assert body == pytest.approx(4 * 64 * 4 + 64 * 4)
    # Tail: the last convolution's 256 channels on a grid of 2x2 per LR pixel, and its input (64 channels there).
    assert tail == pytest.approx(2 * 2 * (256 + 64) * 4) and whole < body
    bf16 = Upscaler.load("srresnet_x4", amp=True)
    assert tile_costs(bf16, Parts.of(bf16))[0] == pytest.approx(body / 2)  # autocast's maps are bf16
    # A 1000x750 photo in bf16: the body in a few large tiles, so its margins add about a fifth.
    tiles = plan(bf16, Parts.of(bf16), 750, 1000, 16)
    margin = Parts.of(bf16).body_margin + Parts.of(bf16).tail_margin
    computed = sum((min(750, t.rows[1] + margin) - max(0, t.rows[0] - margin))
                   * (min(1000, t.cols[1] + margin) - max(0, t.cols[0] - margin)) for t in tiles)
    assert 1 < len(tiles) <= 4 and computed / 750_000 < 1.25
    assert len(plan(fsrcnn, Parts.of(fsrcnn), 300, 200, 16)) == 1  # a small image is one tile


def test_on_a_gpu_the_tile_comes_from_its_free_memory():
    """The sizing rule with a stated free-memory figure (it cannot be timed without a GPU): an
    80 GB card with 78 GB free runs a 12-megapixel photo's SRResNet body in one tile; the CPU's budget needs many."""
    up = Upscaler.load("srresnet_x4", amp=False)
    free = 78 * 10**9
    gpu = plan(up, Parts.of(up), 3000, 4000, 16, budget=activation_budget(torch.device("cuda"), free=free))
    cpu = plan(up, Parts.of(up), 3000, 4000, 16)
    assert activation_budget(torch.device("cuda"), free=free) == free * sr.enlarge_plan.GPU_SHARE
    assert len(gpu) == 1 and len(cpu) > 20


def test_the_grid_computes_the_fewest_margin_pixels():
    assert choose_grid(750, 1000, 40, 10**9) == ([0, 750], [0, 1000])  # fits whole: one tile
    rows, cols = choose_grid(750, 1000, 40, 300_000)  # 2 x 2 regions of 415 x 540 fit; 1 x 3 would compute more
    assert (len(rows), len(cols)) == (3, 3)
    rows, cols = choose_grid(40, 50, 30, 100)  # nothing fits: the most tiles whose cores keep MIN_TILE a side
    assert (len(rows) - 1, len(cols) - 1) == (40 // sr.enlarge_plan.MIN_TILE, 50 // sr.enlarge_plan.MIN_TILE)


def test_a_tile_bar_and_an_estimate_after_the_first_tile(tmp_path, capsys, small_budgets):
    Image.fromarray(smooth_image(RNG, 70, 40)).save(tmp_path / "in.png")
    up = Upscaler.load("fsrcnn_x2", amp=False)
    estimates = []
    image, _ = enlarge(up, read_photo(tmp_path / "in.png", compact=True), "png", progress="in.png",
                       estimate=estimates.append)
    assert "in.png" in capsys.readouterr().err and len(estimates) == 1 and estimates[0] > 0
    write_photo(tmp_path / "w.png", enlarge_whole(up, read_photo(tmp_path / "in.png")))
    assert np.abs(np.asarray(image).astype(int) - np.asarray(Image.open(tmp_path / "w.png")).astype(int)).max() <= 1


def test_an_image_of_one_piece_draws_no_tile_bar(tmp_path, capsys):
    Image.fromarray(smooth_image(RNG, 30, 40)).save(tmp_path / "in.png")
    up = Upscaler.load("fsrcnn_x2", amp=False)
    enlarge(up, read_photo(tmp_path / "in.png", compact=True), "png", progress="in.png")
    assert capsys.readouterr().err == ""  # a bar that would flash up and be wiped at once
