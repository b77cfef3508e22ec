import csv
import json

import pytest
import torch

import sr.training.gan
import train_srgan
from experiments import export_weights
from sr.checkpoint import load_checkpoint
from sr.data.h5 import PatchDataset
from sr.errors import Interrupted, UserError
from sr.models import Discriminator, create_model
from sr.precision import choose_precision
from sr.training.optim import Optim
from tests.conftest import interrupt_at_call, make_h5


@pytest.fixture(scope="module")
def rgb_x2(tmp_path_factory, image_folders):
    """lr-hr RGB pairs at x2: 32 px HR patches, 16 px LR; 30 of them, 3 batches of 8."""
    return make_h5(tmp_path_factory.mktemp("rgb"), image_folders, 2, "--layout", "lr-hr", "--color", "rgb",
                   "--patch-size", "32", "--stride", "24")


@pytest.fixture(scope="module")
def rgb_x2_few(tmp_path_factory, image_folders):
    """As ``rgb_x2`` with a wider stride: 9 pairs, 2 batches of 4 (a third of its pixels an epoch)."""
    return make_h5(tmp_path_factory.mktemp("rgb_few"), image_folders, 2, "--layout", "lr-hr", "--color", "rgb",
                   "--patch-size", "32", "--stride", "48")


def _run(h5, out, *extra):
    train, evaluation = h5
    argv = ["--train", str(train), "--eval", str(evaluation), "--out", str(out), "--device", "cpu",
            "--batch-size", "8", "--epochs", "1", "--scale", "2", *extra]
    return train_srgan.main(train_srgan.parse_args(argv))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, rgb_x2):
    out = tmp_path_factory.mktemp("pre") / "run"
    _run(rgb_x2, out, "--arch", "srresnet-noin")
    return out / "last.pth"


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _gan_step_setup(content_loss, adv_weight):
    """A seeded x2 generator, a discriminator for its 24 px output, fp32 Adam for each, and
    ``step(lr, hr)``: one ``gan_step`` on them, so a test can hook the optimisers before stepping."""
    torch.manual_seed(0)
    g, _ = create_model("srresnet-noin", 2)
    d = Discriminator(patch_size=24)
    precision = choose_precision(torch.device("cpu"), amp=False, channels_last=False)
    g_opt, d_opt = Optim.adam(g, 1e-3, 10, precision), Optim.adam(d, 1e-3, 10, precision)

    def step(lr, hr):
        return sr.training.gan.gan_step(g, d, d, lr, hr, content_loss, g_opt, d_opt, precision, adv_weight=adv_weight)

    return g, d, g_opt, step


def test_gan_step_updates_g_then_d_and_freezes_d_during_the_g_step():
    g, d, g_opt, step = _gan_step_setup(torch.nn.L1Loss(), adv_weight=1e-3)
    g0, d0 = _params(g), _params(d)
    seen = {}

    def after_g_step(optimizer, args, kwargs):
        seen["d_grads"] = [p.grad for p in d.parameters()]
        seen["d_requires_grad"] = any(p.requires_grad for p in d.parameters())
        seen["d_after_g_step"] = _params(d)

    g_opt.optimizer.register_step_post_hook(after_g_step)
    losses = step(torch.rand(4, 3, 12, 12), torch.rand(4, 3, 24, 24))
    assert all(grad is None for grad in seen["d_grads"]) and not seen["d_requires_grad"]
    assert _same(seen["d_after_g_step"], d0)  # the G step left D alone
    assert not _same(_params(g), g0) and not _same(_params(d), d0)  # and then both moved
    assert set(losses) == {"loss", "content", "adv", "perceptual", "d"}
    assert losses["loss"].item() == pytest.approx(losses["content"].item() + 1e-3 * losses["adv"].item(), rel=1e-5)


def test_the_adversarial_term_alone_moves_the_generator():
    # No content loss: whatever reaches G comes back through D's output.
    g, _, g_opt, step = _gan_step_setup(lambda pred, target: pred.sum() * 0, adv_weight=1.0)
    g0 = _params(g)
    seen = {}
    g_opt.optimizer.register_step_pre_hook(lambda optimizer, args, kwargs: seen.update(grads=[p.grad for p in g.parameters()]))
    losses = step(torch.rand(4, 3, 12, 12), torch.rand(4, 3, 24, 24))
    assert losses["content"].item() == 0 and losses["loss"].item() == pytest.approx(losses["adv"].item())
    assert all(grad is not None for grad in seen["grads"])
    assert sum(grad.abs().sum().item() for grad in seen["grads"]) > 0
    assert not _same(_params(g), g0)


def test_pretrain_hands_its_generator_to_the_gan_phase(tmp_path, rgb_x2, pretrained):
    result = _run(rgb_x2, tmp_path / "gan", "--phase", "gan", "--generator", str(pretrained), "--lr", "1e-12")
    gan = load_checkpoint(tmp_path / "gan" / "last.pth")
    pre = load_checkpoint(pretrained)
    assert gan["arch"] == "srresnet-noin" and gan["scale"] == 2 and gan["model_kwargs"] == pre["model_kwargs"]
    for key, value in pre["model"].items():  # a vanishing G learning rate: G is still the pretrained one
        assert torch.allclose(gan["model"][key], value, atol=1e-6), key
    assert gan["discriminator_kwargs"] == {"channels": 3, "patch_size": 32}
    with open(tmp_path / "gan" / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert {"content", "adv", "d", "psnr"} <= set(row)
    assert isinstance(result["discriminator"], Discriminator)
    # Exported, the GAN run ships its generator alone, and its recipe names both phases.
    export_weights.main([str(tmp_path / "gan"), "--name", "srgan_x2", "--out-dir", str(tmp_path / "weights")])
    shipped = load_checkpoint(tmp_path / "weights" / "srgan_x2.safetensors")
    assert "discriminator" not in shipped and shipped["model"].keys() == pre["model"].keys()
    recipe = json.loads((tmp_path / "weights" / "srgan_x2.json").read_text())
    assert [r["run"] for r in recipe["runs"]] == [str(pretrained.parent), str(tmp_path / "gan")]
    assert recipe["runs"][0]["command"].startswith("python train_srgan.py --phase pretrain --arch srresnet-noin")
    assert recipe["runs"][1]["command"].startswith("python train_srgan.py --phase gan --arch srresnet-noin")
    assert f"--generator {pretrained}" in recipe["runs"][1]["command"]


def test_gan_resume_continues_exactly(tmp_path, rgb_x2_few, pretrained, monkeypatch):
    extra = ["--phase", "gan", "--generator", str(pretrained), "--epochs", "2", "--no-amp", "--batch-size", "4"]
    _run(rgb_x2_few, tmp_path / "straight", *extra)
    batches = len(PatchDataset(rgb_x2_few[0])) // 4
    assert batches >= 2  # so that a stop one batch into epoch 2 lands inside it
    interrupt_at_call(monkeypatch, 2 * (batches + 1) + 1)  # in epoch 2, after one batch
    with pytest.raises(Interrupted):
        _run(rgb_x2_few, tmp_path / "split", *extra)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "split" / "last.pth")["step"] == 1
    train_srgan.main(train_srgan.parse_args(["--resume", str(tmp_path / "split" / "last.pth"), "--device", "cpu"]))
    a, b = load_checkpoint(tmp_path / "straight" / "last.pth"), load_checkpoint(tmp_path / "split" / "last.pth")
    for part in ("model", "discriminator"):
        for key, value in a[part].items():
            assert torch.allclose(b[part][key].float(), value.float(), atol=1e-5), (part, key)
    assert a["d_scheduler"]["last_epoch"] == b["d_scheduler"]["last_epoch"] == 2 * batches


def test_bad_gan_inputs_are_refused(tmp_path, rgb_x2, pretrained, h5_x3):
    with pytest.raises(UserError, match="--phase gan needs --generator"):
        _run(rgb_x2, tmp_path / "a", "--phase", "gan")
    with pytest.raises(UserError, match="--arch srresnet does not match the generator"):
        _run(rgb_x2, tmp_path / "b", "--phase", "gan", "--generator", str(pretrained), "--arch", "srresnet")
    with pytest.raises(UserError, match="--scale 8 does not match the generator"):
        _run(rgb_x2, tmp_path / "c", "--phase", "gan", "--generator", str(pretrained), "--scale", "8")
    with pytest.raises(UserError, match="needs --vgg-weights"):
        _run(rgb_x2, tmp_path / "d", "--phase", "gan", "--generator", str(pretrained), "--perceptual-weight", "1")
    with pytest.raises(UserError, match="--vgg-weights .*none.pth: no such file"):
        _run(rgb_x2, tmp_path / "e", "--phase", "gan", "--generator", str(pretrained), "--perceptual-weight", "1",
             "--vgg-weights", str(tmp_path / "none.pth"))
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()  # refused before a run folder was made
    with pytest.raises(UserError, match="--ema and --last-layer-lr are for the pretrain phase"):
        _run(rgb_x2, tmp_path / "g", "--phase", "gan", "--generator", str(pretrained), "--ema", "0.9")
    with pytest.raises(UserError, match=r"layout 'upsampled' \(need 'lr-hr'\), color 'y' \(need 'rgb'\)"):
        train, evaluation = h5_x3
        train_srgan.main(train_srgan.parse_args(["--train", str(train), "--eval", str(evaluation), "--scale", "3",
                                                 "--arch", "srresnet-noin", "--out", str(tmp_path / "f")]))
    with pytest.raises(UserError, match="is a run of train_srgan.py, not train_srcnn.py"):
        import train_srcnn

        train_srcnn.main(train_srcnn.parse_args(["--resume", str(pretrained)]))
