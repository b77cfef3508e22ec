"""Self-ensemble (EDSR's "+", Lim et al. 2017): the mean of a network's outputs on the 8 flips and
90-degree rotations of its input, each turned back. 8x the compute for a few hundredths of a dB;
reported in its own rows, never in place of a single pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _transforms(k: int, flip: bool) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(forward, inverse) of "rotate k quarter turns, then flip left-right if ``flip``" on (N, C, H, W)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = torch.rot90(x, k, dims=(2, 3))
        return torch.flip(x, dims=(3,)) if flip else x

    def inverse(y: torch.Tensor) -> torch.Tensor:
        y = torch.flip(y, dims=(3,)) if flip else y
        return torch.rot90(y, -k, dims=(2, 3))

    return forward, inverse


DIHEDRAL = [_transforms(k, flip) for k in range(4) for flip in (False, True)]


class SelfEnsemble(nn.Module):
    """Wraps any network (N, C, h, w) -> (N, C, H, W) whose behaviour does not depend on orientation
    (convolutions, pixel shuffles, transposed convolutions: every model here)."""

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for forward, inverse in DIHEDRAL:
            y = inverse(self.net(forward(x).contiguous())).float()
            total = y if total is None else total + y
        return total / len(DIHEDRAL)
