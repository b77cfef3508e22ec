"""Tiled inference: enlarge an image of any size with memory bounded by the tile.

Each tile is run with a margin as wide as the model's receptive field and only its core
is kept, so every convolution sees what it would see on the whole image (zero padding at
the image border included). InstanceNorm is the exception: it normalises with statistics
of the whole image. For models that have it, those statistics are gathered first, one
norm layer at a time (a layer's input depends on the statistics of the layers before
it) by running the tiles up to that layer; then every layer normalises with the
whole-image numbers. That costs about (number of norm layers / 2) partial passes more,
and gives the untiled result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from sr.errors import UserError


def receptive_radius(model: nn.Module) -> int:
    """How many input pixels on each side can influence one output pixel (rounded up, +1).

    Walks the layers in registration order, which is the forward order for every model in
    ``sr.models``; distances are kept in input-pixel units as the resolution changes. A
    model whose layers are hidden (``sr.onnx_runtime.OnnxModel``) carries the number itself.
    """
    stored = getattr(model, "receptive_radius", None)
    if isinstance(stored, int):
        return stored
    radius, pixel = 0.0, 1.0  # pixel: the side of one feature-map pixel, in input pixels
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            radius += (layer.kernel_size[0] // 2) * layer.dilation[0] * pixel
            pixel *= layer.stride[0]
        elif isinstance(layer, nn.ConvTranspose2d):
            radius += (layer.kernel_size[0] // 2 + 1) * pixel / layer.stride[0]
            pixel /= layer.stride[0]
        elif isinstance(layer, nn.PixelShuffle):
            pixel /= layer.upscale_factor
    return math.ceil(radius) + 1


class Tile(NamedTuple):
    core: tuple[int, int, int, int]  # top, left, bottom, right: the part of the image it produces
    region: tuple[int, int, int, int]  # the core with its margin, clipped to the image


def plan_tiles(height: int, width: int, tile: int, radius: int) -> list[Tile]:
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            region = (max(0, top - radius), max(0, left - radius), min(height, bottom + radius), min(width, right + radius))
            tiles.append(Tile((top, left, bottom, right), region))
    return tiles


def _crop(x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    top, left, bottom, right = box
    return x[..., top:bottom, left:right]


class _Stop(Exception):
    """Ends a forward pass once the layer being measured has seen its input."""


def _measure(model: nn.Module, x: torch.Tensor, tiles: list[Tile], norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-image per-channel mean and (biased) variance of ``norm``'s input."""
    n, total, total_sq, current = 0, 0.0, 0.0, {}

    def hook(module, args, output):
        nonlocal n, total, total_sq
        (inp,) = args
        tile: Tile = current["tile"]
        # The core's box at this layer's resolution (features may be smaller or larger).
        fy = inp.shape[-2] / (tile.region[2] - tile.region[0])
        fx = inp.shape[-1] / (tile.region[3] - tile.region[1])
        top, left = tile.core[0] - tile.region[0], tile.core[1] - tile.region[1]
        bottom, right = tile.core[2] - tile.region[0], tile.core[3] - tile.region[1]
        core = _crop(inp, (round(top * fy), round(left * fx), round(bottom * fy), round(right * fx))).double()
        n += core.shape[-2] * core.shape[-1]
        total = total + core.sum(dim=(0, 2, 3))
        total_sq = total_sq + core.pow(2).sum(dim=(0, 2, 3))
        raise _Stop

    handle = norm.register_forward_hook(hook)
    try:
        for tile in tiles:
            current["tile"] = tile
            try:
                model(_crop(x, tile.region))
            except _Stop:
                pass
    finally:
        handle.remove()
    mean = total / n
    return mean.view(1, -1, 1, 1), (total_sq / n - mean.pow(2)).view(1, -1, 1, 1)


@contextmanager
def whole_image_norms(model: nn.Module, x: torch.Tensor, tiles: list[Tile]) -> Iterator[None]:
    """Inside, every InstanceNorm2d of ``model`` normalises with the statistics of the whole
    (1, C, H, W) input ``x`` (measured on entry, tile by tile, one norm layer at a time), so
    running the model on any tile region gives what the whole image gives there. A model
    without InstanceNorm is left as it is."""
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def normalise(module, args, output):
        if module not in stats:  # not measured yet: leave the layer as it is
            return output
        mean, var = stats[module]
        (inp,) = args
        y = (inp - mean.to(inp.dtype)) / torch.sqrt(var.to(inp.dtype) + module.eps)
        if module.affine:
            y = y * module.weight.view(1, -1, 1, 1) + module.bias.view(1, -1, 1, 1)
        return y

    handles = [m.register_forward_hook(normalise) for m in norms]
    try:
        with torch.no_grad():
            for norm in norms:
                stats[norm] = _measure(model, x, tiles, norm)
        yield
    finally:
        for h in handles:
            h.remove()


def refuse_whole_image_norm(model: nn.Module) -> None:
    """An ONNX graph with InstanceNorm has no layers to hook: its tiles cannot be made to agree."""
    if getattr(model, "whole_image_norm", False):
        raise UserError(f"{getattr(model, 'path', 'this model')}: normalises over the whole image (InstanceNorm), "
                        "which tiles of an ONNX graph cannot reproduce; run it untiled or use the .pth checkpoint")


@torch.no_grad()
def tiled_forward(model: nn.Module, x: torch.Tensor, scale: int, tile: int, radius: int | None = None) -> torch.Tensor:
    """``model(x)`` for a (1, C, H, W) ``x``, computed tile by tile.

    ``scale`` is the output/input size ratio (1 for pre-upsampled models); ``tile`` is the
    core's side in input pixels; ``radius`` (the margin) defaults to the receptive field.
    """
    if x.shape[0] != 1:
        raise ValueError("tiled_forward takes one image at a time")
    if tile < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    refuse_whole_image_norm(model)
    radius = receptive_radius(model) if radius is None else radius
    tiles = plan_tiles(x.shape[-2], x.shape[-1], tile, radius)
    out = None
    with whole_image_norms(model, x, tiles):
        for t in tiles:
            piece = model(_crop(x, t.region))
            if out is None:
                out = piece.new_empty(1, piece.shape[1], x.shape[-2] * scale, x.shape[-1] * scale)
            top, left = (t.core[0] - t.region[0]) * scale, (t.core[1] - t.region[1]) * scale
            height, width = (t.core[2] - t.core[0]) * scale, (t.core[3] - t.core[1]) * scale
            out[..., t.core[0] * scale : t.core[2] * scale, t.core[1] * scale : t.core[3] * scale] = piece[
                ..., top : top + height, left : left + width
            ]
    return out
