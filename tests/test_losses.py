import pytest
import torch
from torchvision.models import vgg19

from sr.errors import UserError
from sr.losses import CharbonnierLoss, PerceptualLoss, adversarial_loss, content_loss


def test_content_losses_by_name():
    a, b = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5)
    assert content_loss("mse")(a, b).item() == pytest.approx(0.25)
    assert content_loss("l1")(a, b).item() == pytest.approx(0.5)
    assert CharbonnierLoss(eps=1e-3)(a, b).item() == pytest.approx((0.25 + 1e-6) ** 0.5)


def test_adversarial_loss_is_bce_on_logits():
    logits = torch.tensor([0.0, 2.0])
    assert adversarial_loss(logits, real=True).item() == pytest.approx(
        (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(-2.0)))).item() / 2)
    assert adversarial_loss(torch.tensor([0.0]), real=False).item() == pytest.approx(0.6931, abs=1e-4)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A VGG19 with random weights, saved as torchvision saves it (features only, to keep it small)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    features = vgg19(weights=None).features[:9]  # up to relu2_2
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_perceptual_loss_reads_local_weights_and_is_frozen(tmp_path, vgg_file):
    state = torch.load(vgg_file)
    full = {**state, **{f"features.{k}": v for k, v in vgg19(weights=None).features.state_dict().items()
                        if f"features.{k}" not in state}}
    torch.save(full, tmp_path / "full.pth")
    loss = PerceptualLoss(tmp_path / "full.pth", layer="relu2_2")
    assert len(loss.features) == 9 and not any(p.requires_grad for p in loss.parameters())
    assert torch.equal(loss.features[0].weight, state["features.0.weight"])
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(x, torch.rand(2, 3, 32, 32))
    value.backward()
    assert value.item() > 0 and x.grad.abs().sum() > 0
    assert loss(x, x.detach()).item() == pytest.approx(0.0, abs=1e-10)
    loss.train()
    assert not loss.features.training


def test_missing_or_wrong_vgg_files_are_clear_errors(tmp_path, vgg_file):
    with pytest.raises(UserError, match="VGG19 weights file not found .*never downloaded"):
        PerceptualLoss(tmp_path / "absent.pth")
    with pytest.raises(UserError, match="not torchvision VGG19 weights"):
        PerceptualLoss(vgg_file, layer="relu5_4")  # the file stops at relu2_2
    with pytest.raises(UserError, match="unknown VGG19 layer"):
        PerceptualLoss(vgg_file, layer="relu9_9")
