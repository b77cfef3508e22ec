"""Self-ensemble (EDSR's "+", Lim et al. 2017): the mean of a network's outputs on flips and
90-degree rotations of its input, each turned back. ``passes`` of them, N times the compute:

* 8 (``--tta``): every flip and rotation, for a few hundredths of a dB; scores so made are reported
  in their own rows, never in place of a single pass.
* 2 (as it is, and flipped left-right): what the enlarger runs a photo model with on a lossy file
  (``sr.weights.Anchor.passes``, chosen on validation): most of the eight's gain on compressed
  files for a quarter of their time, and fewer blocks where the model draws what bicubic does not.
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


# Ordered so that the first 2 (as it is, flipped left-right) and the first 4 (and upside down, both
# flips) are each closed under flipping: a prefix averages mirror images in pairs.
DIHEDRAL = [_transforms(k, flip) for k in (0, 2, 1, 3) for flip in (False, True)]
PASSES = (1, 2, 4, 8)


class SelfEnsemble(nn.Module):
    """Wraps any network (N, C, h, w) -> (N, C, H, W) whose behaviour does not depend on orientation
    (convolutions, pixel shuffles, transposed convolutions: every model here)."""

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor], passes: int = 8):
        super().__init__()
        if passes not in PASSES:
            raise ValueError(f"self-ensemble passes: one of {PASSES}, not {passes}")
        self.net, self.passes = net, passes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for forward, inverse in DIHEDRAL[:self.passes]:
            y = inverse(self.net(_dense(forward(x), x))).float()
            total = y if total is None else total + y
        return total / self.passes

    # A network the enlarger runs in two parts (SRResNet: ``features`` on tiles, ``reconstruct`` on
    # pieces of them; sr.enlarge_plan.Parts) keeps them apart under the ensemble too: each pass's
    # features are turned back to the input's orientation and stacked on the batch, so that a piece
    # cut from them is, turned again, the piece of that pass's own features.

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (passes x N, F, h, w): each pass's features, turned back."""
        return torch.cat([inverse(self.net.features(_dense(forward(x), x))) for forward, inverse in DIHEDRAL[:self.passes]])

    def reconstruct(self, held: torch.Tensor) -> torch.Tensor:
        """A piece of ``features``' output -> the mean of the passes' outputs, each turned back."""
        total = None
        for (forward, inverse), part in zip(DIHEDRAL[:self.passes], held.chunk(self.passes)):
            y = inverse(self.net.reconstruct(_dense(forward(part), part))).float()
            total = y if total is None else total + y
        return total / self.passes


def _dense(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` made contiguous in the memory format ``like`` has (channels-last stays channels-last)."""
    last = like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return t.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)
