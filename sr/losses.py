"""Content losses by name, and the adversarial and perceptual losses of SRGAN."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sr.errors import UserError


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


class PerceptualLoss(nn.Module):
    """MSE between VGG19 feature maps of prediction and target (Johnson et al.; SRGAN's
    "VGG loss"). Inputs are RGB in [0, 1], normalised with ImageNet statistics.

    The weights come from a local file holding torchvision's ``vgg19`` state_dict (e.g.
    ``vgg19-dcbb9e9d.pth``), or only its ``features.*`` entries; nothing is downloaded.
    The network is frozen.
    """

    def __init__(self, weights_path: str | Path, layer: str = "relu5_4"):
        super().__init__()
        from torchvision.models import vgg19  # only this loss needs torchvision

        if layer not in VGG19_LAYERS:
            raise UserError(f"unknown VGG19 layer {layer!r}; choose from {', '.join(VGG19_LAYERS)}")
        path = Path(weights_path)
        if not path.is_file():
            raise UserError(f"{path}: VGG19 weights file not found (torchvision's vgg19 state_dict; it is never downloaded)")
        features = vgg19(weights=None).features
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            # torchvision's full state_dict, or just its "features." part (the classifier is unused).
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
        except Exception as exc:  # noqa: BLE001 - any failure here means the file is not VGG19 weights
            raise UserError(f"{path}: not torchvision VGG19 weights ({str(exc).splitlines()[0][:120]})") from None
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
