"""FSRCNN (Dong et al., ECCV 2016) and the report's variants of it.

One class covers all of them: feature extraction (5x5, d), shrinking (1x1, s), m mapping
layers (s -> s), expanding (1x1, d) and a 9x9 deconvolution. ``scale=1`` is the report's
form, run on the bicubic-upsampled image with a stride-1 deconvolution; ``scale > 1`` is
the paper's, run on the LR image with a strided deconvolution that enlarges it.
"""

from __future__ import annotations

import torch
from torch import nn

from sr.models.counting import NetworkSize, conv_parameters


def _conv_prelu(c_in: int, c_out: int, kernel: int, norm: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)]
    if norm:
        layers.append(nn.InstanceNorm2d(c_out, affine=True))
    layers.append(nn.PReLU(c_out))
    return layers


class FSRCNN(nn.Module):
    """(N, C, h, w) -> (N, C, h * scale, w * scale); images in [0, 1]."""

    def __init__(
        self,
        channels: int = 1,
        d: int = 56,
        s: int = 12,
        m: int = 4,
        mapping_kernel: int = 3,
        mapping_norm: bool = False,
        scale: int = 1,
    ):
        super().__init__()
        layers = _conv_prelu(channels, d, 5) + _conv_prelu(d, s, 1)
        for _ in range(m):
            layers += _conv_prelu(s, s, mapping_kernel, norm=mapping_norm)
        layers += _conv_prelu(s, d, 1)
        self.body = nn.Sequential(*layers)
        # Output size is (h - 1) * scale - 2 * padding + 9 + output_padding = h * scale.
        # The padding centres each LR pixel's 9x9 footprint on the HR pixels that MATLAB's
        # bicubic kernel maps it to ((i + 0.5) * scale - 0.5), so the filter need not learn
        # a shift: padding 4 for x2, 3 for x3 and x4, 1 for x8 (and 4 for scale 1).
        padding = 4 - (scale - 1) // 2
        if scale < 1 or padding < 0:  # PyTorch refuses negative padding, but only at the first forward
            raise ValueError(f"FSRCNN's 9x9 deconvolution enlarges by 1 to 10; got scale {scale}")
        self.deconv = nn.ConvTranspose2d(
            d, channels, 9, stride=scale, padding=padding, output_padding=2 * padding - 9 + scale
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(x))

    @staticmethod
    def size(channels: int, d: int, s: int, m: int, mapping_kernel: int, mapping_norm: bool, scale: int) -> NetworkSize:
        """What ``__init__`` builds, counted: conv 5x5 + PReLU(d), shrink 1x1 + PReLU(s), m x (conv k x k
        [+ InstanceNorm] + PReLU(s)), expand 1x1 + PReLU(d), 9x9 deconvolution (weight d x channels x 9 x 9)."""
        mapping = conv_parameters(s, s, mapping_kernel) + s + (2 * s if mapping_norm else 0)
        count = (conv_parameters(channels, d, 5) + d + conv_parameters(d, s, 1) + s + m * mapping
                 + conv_parameters(s, d, 1) + d + conv_parameters(d, channels, 9))
        return NetworkSize(m + 4, max(channels, d, s), count)
