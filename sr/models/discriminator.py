"""The SRGAN discriminator (Ledig et al., CVPR 2017): a VGG-style binary classifier."""

from __future__ import annotations

import torch
from torch import nn

from sr.models.counting import NetworkSize, conv_parameters


class Discriminator(nn.Module):
    """(N, C, P, P) HR patch in [0, 1] -> (N,) logits (real > 0).

    Eight 3x3 convs, 64 -> 512 features, every second one with stride 2, LeakyReLU 0.2 and
    BatchNorm after all but the first; then Dense(1024), LeakyReLU, Dense(1). The dense
    head fixes the input size, so the network is built for one ``patch_size``.
    """

    def __init__(self, channels: int = 3, patch_size: int = 96, features: int = 64, batch_norm: bool = True):
        super().__init__()
        widths = [features, features, 2 * features, 2 * features, 4 * features, 4 * features, 8 * features, 8 * features]
        layers: list[nn.Module] = []
        c_in, side = channels, patch_size
        for i, c_out in enumerate(widths):
            stride = 2 if i % 2 == 1 else 1
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not (batch_norm and i > 0)))
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, side = c_out, (side + 2 - 3) // stride + 1
        self.features = nn.Sequential(*layers)
        self.patch_size = patch_size
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * side * side, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    @staticmethod
    def size(channels: int, patch_size: int, features: int, batch_norm: bool) -> NetworkSize:
        """What ``__init__`` builds, counted: the eight convolutions (BatchNorm's weight and bias where
        it is on) and the dense head, whose input grows with the square of the patch."""
        widths = [features, features, 2 * features, 2 * features, 4 * features, 4 * features, 8 * features, 8 * features]
        count, c_in, side = 0, channels, patch_size
        for i, c_out in enumerate(widths):
            stride = 2 if i % 2 == 1 else 1
            normed = batch_norm and i > 0
            count += conv_parameters(c_in, c_out, 3, bias=not normed) + (2 * c_out if normed else 0)
            c_in, side = c_out, (side + 2 - 3) // stride + 1
        count += c_in * side * side * 1024 + 1024 + 1024 + 1
        return NetworkSize(10, max(channels, 8 * features, 1024), count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(f"this discriminator was built for {self.patch_size}x{self.patch_size} patches, got {tuple(x.shape[-2:])}")
        return self.head(self.features(x)).squeeze(1)
