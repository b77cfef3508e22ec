"""SRResNet (Ledig et al., CVPR 2017) as the report builds it, with InstanceNorm placement as an option."""

from __future__ import annotations

import math

import torch
from torch import nn

from sr.models.counting import NetworkSize, conv_parameters

NORM_PLACEMENTS = ("all", "tail", "none")


class ResidualBlock(nn.Module):
    """x + [conv3x3, IN, LeakyReLU, conv3x3, IN](x); bias-free convs, as in the report."""

    def __init__(self, features: int, norm: bool, negative_slope: float):
        super().__init__()

        def norm_layer() -> nn.Module:
            return nn.InstanceNorm2d(features, affine=True) if norm else nn.Identity()

        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1, bias=False),
            norm_layer(),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(features, features, 3, padding=1, bias=False),
            norm_layer(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """(N, C, h, w) LR image in [0, 1] -> (N, C, h * scale, w * scale).

    ``norm`` places InstanceNorm: ``"all"`` inside every residual block and after the
    trunk's last conv (the report's SRResNet), ``"tail"`` only after the trunk, ``"none"``
    nowhere. ``scale`` must be a power of two: one conv + PixelShuffle(2) stage per factor 2.
    """

    def __init__(
        self,
        channels: int = 3,
        features: int = 64,
        blocks: int = 16,
        scale: int = 4,
        norm: str = "all",
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if norm not in NORM_PLACEMENTS:
            raise ValueError(f"norm must be one of {NORM_PLACEMENTS}, got {norm!r}")
        stages = int(math.log2(scale)) if scale >= 2 else 0
        if 2**stages != scale:
            raise ValueError(f"SRResNet upsamples by powers of two (2, 4, 8); got scale {scale}")
        self.head = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), nn.LeakyReLU(negative_slope, inplace=True))
        self.trunk = nn.Sequential(
            *[ResidualBlock(features, norm == "all", negative_slope) for _ in range(blocks)],
            nn.Conv2d(features, features, 3, padding=1),
            nn.InstanceNorm2d(features, affine=True) if norm in ("all", "tail") else nn.Identity(),
        )
        upsample: list[nn.Module] = []
        for _ in range(stages):
            upsample += [
                nn.Conv2d(features, features * 4, 3, padding=1, bias=False),
                nn.PixelShuffle(2),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        self.upsample = nn.Sequential(*upsample)
        self.tail = nn.Conv2d(features, channels, 9, padding=4)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body: (N, C, h, w) -> (N, features, h, w), every map at the LR size."""
        features = self.head(x)
        return features + self.trunk(features)

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        """The upsampling tail: (N, features, h, w) -> (N, C, h * scale, w * scale). Its maps are the
        largest of the network (4x the channels at up to half the output size), which is why the
        enlarger runs it on smaller tiles than the body (``sr.enlarge``)."""
        return self.tail(self.upsample(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(self.features(x))

    @staticmethod
    def size(channels: int, features: int, blocks: int, scale: int, norm: str, negative_slope: float) -> NetworkSize:
        """What ``__init__`` builds, counted: head, residual blocks of two bias-free convs (with
        InstanceNorm for "all"), the trunk's conv (and norm), one conv per factor 2, the tail."""
        stages = max(scale, 1).bit_length() - 1  # the constructor refuses scales that are not powers of two
        block = 2 * conv_parameters(features, features, 3, bias=False) + (4 * features if norm == "all" else 0)
        count = (conv_parameters(channels, features, 9) + blocks * block + conv_parameters(features, features, 3)
                 + (2 * features if norm in ("all", "tail") else 0)
                 + stages * conv_parameters(features, 4 * features, 3, bias=False) + conv_parameters(features, channels, 9))
        return NetworkSize(2 * blocks + stages + 3, max(channels, 4 * features), count)
