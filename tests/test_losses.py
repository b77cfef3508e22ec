import re
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torch.hub
from torchvision.models import vgg

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


# The file torchvision's VGG19_Weights.IMAGENET1K_V1 downloads, named by the last part of its URL.
IMAGENET_FILE = "vgg19-dcbb9e9d.pth"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test downloads: torch.hub's one download function (behind torchvision's get_state_dict) fails."""
    def offline(url, dst, *args, **kwargs):
        raise URLError("tests run offline")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


@pytest.fixture(scope="module")
def vgg_state():
    """torchvision vgg19's features (the part a perceptual loss reads), with seeded random weights.

    The 120 M-parameter classifier is left out: building and saving it took most of this file's time.
    """
    torch.manual_seed(0)
    features = vgg.make_layers(vgg.cfgs["E"])
    return {f"features.{k}": v for k, v in features.state_dict().items()}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory, vgg_state):
    """Only the features up to relu2_2 of that VGG19: a file too short for VGG19."""
    path = tmp_path_factory.mktemp("vgg") / "vgg19-short.pth"
    torch.save({k: v for k, v in vgg_state.items() if k.startswith("features.") and int(k.split(".")[1]) < 9}, path)
    return path


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory, vgg_state):
    """A TORCH_HOME whose hub cache holds the whole file where torchvision would have downloaded it,
    in the pre-1.6 serialization of torchvision's 2017 file (which weights_only=True also reads)."""
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(vgg_state, home / "hub" / "checkpoints" / IMAGENET_FILE, _use_new_zipfile_serialization=False)
    return home


def test_perceptual_loss_reads_local_weights_and_is_frozen(tmp_path, vgg_state):
    torch.save({k: v for k, v in vgg_state.items() if k.startswith("features.")}, tmp_path / "features.pth")
    loss = PerceptualLoss(tmp_path / "features.pth", layer="relu2_2")
    assert len(loss.features) == 9 and not any(p.requires_grad for p in loss.parameters())
    assert torch.equal(loss.features[0].weight, vgg_state["features.0.weight"])
    assert torch.equal(loss.features[7].bias, vgg_state["features.7.bias"])
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(x, torch.rand(2, 3, 32, 32))
    value.backward()
    assert value.item() > 0 and x.grad.abs().sum() > 0
    assert loss(x, x.detach()).item() == pytest.approx(0.0, abs=1e-10)
    loss.train()
    assert not loss.features.training


def test_without_a_file_torchvisions_cached_imagenet_weights_are_used(monkeypatch, torch_home, vgg_state):
    from torchvision.models import VGG19_Weights

    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    assert VGG19_Weights.IMAGENET1K_V1.url.endswith("/" + IMAGENET_FILE)
    loss = PerceptualLoss(None, "relu5_4")
    assert len(loss.features) == 36 and not any(p.requires_grad for p in loss.parameters())
    assert torch.equal(loss.features[0].weight, vgg_state["features.0.weight"])
    assert torch.equal(loss.features[34].weight, vgg_state["features.34.weight"])
    # And the same file given by name is the same network.
    named = PerceptualLoss(torch_home / "hub" / "checkpoints" / IMAGENET_FILE, "relu1_2")
    assert len(named.features) == 4 and torch.equal(named.features[2].weight, loss.features[2].weight)


def test_a_download_lands_in_the_cache_and_is_used(monkeypatch, tmp_path, vgg_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fetched = []

    def fake_download(url, dst, *args, **kwargs):  # what torch.hub does: write the whole file at dst
        fetched.append((url, Path(dst).parent))
        torch.save({k: v for k, v in vgg_state.items() if k.startswith("features.")}, dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    loss = PerceptualLoss(None, "relu2_2")
    assert fetched == [("https://download.pytorch.org/models/" + IMAGENET_FILE, tmp_path / "hub" / "checkpoints")]
    assert torch.equal(loss.features[5].weight, vgg_state["features.5.weight"])
    PerceptualLoss(None, "relu2_2")  # the second time it is read from the cache
    assert len(fetched) == 1


def test_offline_without_the_cached_file_says_what_to_place_where(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as err:
        PerceptualLoss(None, "relu5_4")
    folder = tmp_path / "hub" / "checkpoints"
    assert str(err.value) == (
        f"VGG19 weights not found and could not be downloaded (tests run offline): place {IMAGENET_FILE} "
        f"(from https://download.pytorch.org/models/{IMAGENET_FILE}) in {folder}, or pass --vgg-weights FILE")
    assert not (folder / IMAGENET_FILE).exists()


def test_missing_or_wrong_vgg_files_are_clear_errors(monkeypatch, tmp_path, vgg_file, vgg_state):
    with pytest.raises(UserError, match="VGG19 weights file not found .*never downloaded"):
        PerceptualLoss(tmp_path / "absent.pth")
    with pytest.raises(UserError, match=r"not torchvision VGG19 weights \(no features.10.weight\)"):
        PerceptualLoss(vgg_file, layer="relu5_4")  # the file stops at relu2_2
    with pytest.raises(UserError, match="unknown VGG19 layer"):
        PerceptualLoss(vgg_file, layer="relu9_9")
    # A wrong file in the cache is named, with the shape it has and the one VGG19 needs.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / IMAGENET_FILE
    cached.parent.mkdir(parents=True)
    wrong = {k: v for k, v in vgg_state.items() if k.startswith("features.")}
    wrong["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(wrong, cached)
    with pytest.raises(UserError, match=rf"^{re.escape(str(cached))}: not torchvision VGG19 weights \(features.0.weight is "
                                        r"\(32, 3, 3, 3\), VGG19 has \(64, 3, 3, 3\)\)$"):
        PerceptualLoss(None)
    cached.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(UserError, match=rf"^{re.escape(str(cached))}: not torchvision VGG19 weights \("):
        PerceptualLoss(None)
