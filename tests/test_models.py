import pytest
import torch

from sr.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from sr.models import MODELS, Discriminator, create_model, list_models, model_kwargs
from tests.conftest import weights_only_checkpoint

# The report's torchsummary totals (SPEC); SRResNet counts are at x4.
COUNTS = {
    "srcnn": 57_281,
    "fsrcnn": 12_809,
    "fsrcnn-in": 15_809,
    "fsrcnn-wide": 48_321,
    "fsrcnn-paper": 12_809,
    "fsrcnn-large": 48_321,
    "fsrcnn-deep": 85_441,
    "srresnet": 1_546_883,
    "srresnet-noin": 1_542_659,
    "srresnet-tailin": 1_542_787,
}


def _scale(name: str) -> int:
    return 4 if MODELS[name].family == "srgan" else 3


def test_every_registered_model_has_a_count():
    assert set(COUNTS) == set(MODELS)
    assert list_models("srgan") == ["srresnet", "srresnet-noin", "srresnet-tailin"]


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_count_is_exact(name):
    model, _ = create_model(name, _scale(name))
    assert sum(p.numel() for p in model.parameters()) == COUNTS[name]


@pytest.mark.parametrize("name", list(MODELS))
def test_a_meta_device_build_has_the_same_parameters_and_no_storage(name):
    # what sr.checkpoint_fields.validate_checkpoint counts before it lets anything be allocated
    with torch.device("meta"):
        model = MODELS[name].cls(**model_kwargs(name, _scale(name)))
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == COUNTS[name]
    real, _ = create_model(name, _scale(name))
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_shape_finite_output_and_gradient_for_every_parameter(name):
    torch.manual_seed(0)
    scale = _scale(name)
    model, kwargs = create_model(name, scale)
    c = kwargs["channels"]
    upsampled = MODELS[name].layout == "upsampled"
    x = torch.rand(2, c, 21, 17)
    out = model(x)
    assert out.shape == ((2, c, 21, 17) if upsampled else (2, c, 21 * scale, 17 * scale))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} got no gradient"


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_paper_fsrcnn_enlarges_by_its_scale(scale):
    model, kwargs = create_model("fsrcnn-paper", scale)
    assert kwargs["scale"] == scale
    assert model(torch.rand(1, 1, 7, 9)).shape == (1, 1, 7 * scale, 9 * scale)


@pytest.mark.parametrize("scale,stages", [(2, 1), (4, 2), (8, 3)])
def test_srresnet_has_one_pixelshuffle_stage_per_factor_two(scale, stages):
    model, _ = create_model("srresnet", scale)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in model.modules()) == stages
    assert model(torch.rand(1, 3, 6, 5)).shape == (1, 3, 6 * scale, 5 * scale)


def test_paper_fsrcnn_refuses_a_scale_its_deconvolution_cannot_reach():
    assert create_model("fsrcnn-paper", 10)[0](torch.rand(1, 1, 3, 3)).shape == (1, 1, 30, 30)
    with pytest.raises(ValueError, match="enlarges by 1 to 10; got scale 11"):
        create_model("fsrcnn-paper", 11)


def test_srresnet_refuses_a_scale_that_is_not_a_power_of_two():
    with pytest.raises(ValueError, match="powers of two"):
        create_model("srresnet", 3)


def test_color_sets_the_channels():
    model, kwargs = create_model("srcnn", 3, "rgb")
    assert kwargs["channels"] == 3 and model(torch.rand(1, 3, 12, 12)).shape == (1, 3, 12, 12)
    _, kwargs = create_model("fsrcnn-paper", 4, "rgb")
    assert kwargs == dict(d=56, s=12, m=4, channels=3, scale=4)


@pytest.mark.parametrize("patch", [96, 100, 128])
def test_discriminator_takes_the_patch_size_it_is_built_for(patch):
    torch.manual_seed(0)
    d = Discriminator(patch_size=patch)
    logits = d(torch.rand(3, 3, patch, patch))
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    side = patch
    for _ in range(4):
        side = (side - 1) // 2 + 1
    convs = 3 * 64 * 9 + 64 + sum(a * b * 9 for a, b in [(64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)])
    norms = 2 * (64 + 128 + 128 + 256 + 256 + 512 + 512)
    head = 512 * side * side * 1024 + 1024 + 1024 + 1
    assert sum(p.numel() for p in d.parameters()) == convs + norms + head
    with pytest.raises(ValueError, match="built for"):
        d(torch.rand(1, 3, patch + 4, patch + 4))


def test_checkpoint_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(1)
    model, _ = create_model("fsrcnn-paper", 3)
    path = tmp_path / "c.pth"
    save_checkpoint(path, weights_only_checkpoint("fsrcnn-paper", 3, model=model))
    state = load_checkpoint(path)
    assert state["format"] == FORMAT
    x = torch.rand(1, 1, 10, 10)
    assert torch.equal(model_from_checkpoint(state)(x), model.eval()(x))
