"""SRCNN (Dong et al., TPAMI 2016), the 9-5-5 network on the bicubic-upsampled image."""

from __future__ import annotations

import torch
from torch import nn

from sr.models.counting import NetworkSize, conv_parameters


class SRCNN(nn.Module):
    """(N, C, H, W) upsampled image in [0, 1] -> (N, C, H, W) restored image.

    Same-size padding (``kernel // 2``) keeps the output aligned with the input, so the
    whole image is restored, borders included (the paper's valid convolutions lose 12 px).
    """

    def __init__(self, channels: int = 1, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 5, f3: int = 5):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, n1, f1, padding=f1 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(n1, n2, f2, padding=f2 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(n2, channels, f3, padding=f3 // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    @staticmethod
    def size(channels: int, n1: int, n2: int, f1: int, f2: int, f3: int) -> NetworkSize:
        """What ``__init__`` builds, counted: three convolutions."""
        count = conv_parameters(channels, n1, f1) + conv_parameters(n1, n2, f2) + conv_parameters(n2, channels, f3)
        return NetworkSize(3, max(channels, n1, n2), count)
