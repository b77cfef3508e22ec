"""Content losses by name, and the adversarial and perceptual losses of SRGAN."""

from __future__ import annotations

from http.client import HTTPException
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torch.hub
import torch.nn.functional as F
from torch import nn

from sr.errors import UserError, first_line


class CharbonnierLoss(nn.Module):
    """mean(sqrt((x - y)^2 + eps^2)): L1 that is smooth at zero (Lai et al., LapSRN)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target).pow(2) + self.eps**2).mean()


CONTENT_LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "charbonnier": CharbonnierLoss}


def content_loss(name: str) -> nn.Module:
    return CONTENT_LOSSES[name]()


def adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy on logits against an all-real or all-fake target."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


# torchvision's vgg19().features index of each ReLU, named as in the papers.
VGG19_LAYERS = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}  # fmt: skip


def vgg19_imagenet_file() -> tuple[Path, str]:
    """Where torchvision keeps its VGG19 ImageNet weights, and where they come from.

    Returns (``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``, its URL): the file that
    ``VGG19_Weights.IMAGENET1K_V1.get_state_dict()`` reads, or downloads once. ``$TORCH_HOME``
    (default ``~/.cache/torch``) moves the folder, as it does for every torchvision model.
    """
    from torchvision.models import VGG19_Weights  # only this loss needs torchvision

    url = VGG19_Weights.IMAGENET1K_V1.url
    # The same name and folder as torch.hub.load_state_dict_from_url, which get_state_dict calls.
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name, url


def _read_vgg19(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is not a state_dict
        raise UserError(f"{path}: not torchvision VGG19 weights ({first_line(exc, 120)})") from None


def _download_vgg19(cached: Path, url: str) -> object:
    """torchvision's own download into the torch hub cache (a temp file, moved into place when whole)."""
    from torchvision.models import VGG19_Weights

    try:
        return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True, weights_only=True)
    except (OSError, HTTPException) as exc:  # URLError, HTTPError, timeouts, a read-only cache are OSErrors
        reason = exc.reason if isinstance(exc, URLError) else exc
        raise UserError(f"VGG19 weights not found and could not be downloaded ({first_line(reason, 120)}): "
                        f"place {cached.name} (from {url}) in {cached.parent}, or pass --vgg-weights FILE") from None


def _check_vgg19(state: object, features: nn.Sequential, source: Path) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of ``state`` without their prefix, once every one has VGG19's shape."""
    if not isinstance(state, dict):
        raise UserError(f"{source}: not torchvision VGG19 weights (holds a {type(state).__name__}, not a state_dict)")
    # torchvision's full state_dict, or just its "features." part (the classifier is unused).
    got = {k.removeprefix("features."): v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    for key, want in features.state_dict().items():
        if key not in got:
            raise UserError(f"{source}: not torchvision VGG19 weights (no features.{key})")
        if not isinstance(got[key], torch.Tensor) or got[key].shape != want.shape:
            shape = tuple(got[key].shape) if isinstance(got[key], torch.Tensor) else type(got[key]).__name__
            raise UserError(f"{source}: not torchvision VGG19 weights (features.{key} is {shape}, VGG19 has {tuple(want.shape)})")
    extra = sorted(got.keys() - features.state_dict().keys())
    if extra:  # e.g. vgg19_bn, whose batch norms sit where vgg19 has ReLUs
        raise UserError(f"{source}: not torchvision VGG19 weights (unexpected features.{extra[0]})")
    return {k: got[k].float() for k in features.state_dict()}


class PerceptualLoss(nn.Module):
    """MSE between VGG19 feature maps of prediction and target (Johnson et al.; SRGAN's
    "VGG loss"). Inputs are RGB in [0, 1], normalised with ImageNet statistics.

    ``weights`` is a local file holding torchvision's ``vgg19`` state_dict (or only its
    ``features.*`` entries), never downloaded; or None for torchvision's VGG19 ImageNet weights
    (``VGG19_Weights.IMAGENET1K_V1``) from the torch hub cache, downloaded there once if missing
    (see ``vgg19_imagenet_file``). Only the layers up to ``layer`` are kept; they are frozen.
    """

    def __init__(self, weights: str | Path | None, layer: str = "relu5_4"):
        super().__init__()
        from torchvision.models import vgg19

        if layer not in VGG19_LAYERS:
            raise UserError(f"unknown VGG19 layer {layer!r}; choose from {', '.join(VGG19_LAYERS)}")
        if weights is not None:
            source = Path(weights)
            if not source.is_file():
                raise UserError(f"{source}: VGG19 weights file not found (torchvision's vgg19 state_dict; a named file is never downloaded)")
            state = _read_vgg19(source)
        else:
            source, url = vgg19_imagenet_file()
            state = _read_vgg19(source) if source.is_file() else _download_vgg19(source, url)
        # Built on the meta device: no 548 MB of random init for a classifier we never use; the
        # checked tensors then become the parameters as they are (assign=True).
        with torch.device("meta"):
            features = vgg19(weights=None).features
        features.load_state_dict(_check_vgg19(state, features, source), assign=True)
        del state  # the classifier's 470 MB, when the file has it
        self.features = features[: VGG19_LAYERS[layer] + 1].eval()
        self.features.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # a loss network never leaves eval mode
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f_pred = self.features((pred - self.mean) / self.std)
        with torch.no_grad():
            f_target = self.features((target - self.mean) / self.std)
        return F.mse_loss(f_pred.float(), f_target.float())
