"""How big the enlarger's pieces are, and whether an output fits at all.

``plan`` cuts an image into tiles the network runs on and pieces of them that the stages (and
SRResNet's upsampling tail) run on, each sized by what it holds: the network's feature maps,
measured per pixel on a small probe (``tile_costs``), within ``activation_budget`` (fixed on
the CPU, a share of the free memory on a GPU), and the float64 stages within STAGE_BUDGET; the
cuts are the ones that compute the fewest margin pixels (``choose_grid``).
``Axis`` follows one image axis through the stages: which pixels a piece reads at each.
"""

from __future__ import annotations

import ctypes
import math
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import nn

from sr.errors import UserError
from sr.imresize import resize_span, source_span
from sr.models.self_ensemble import SelfEnsemble
from sr.models.srresnet import SRResNet
from sr.tiling import receptive_radius

if TYPE_CHECKING:  # for the annotation only
    from sr.upscaler import Upscaler

# The feature maps of one tile of the network (or of one piece of SRResNet's tail) may take this
# much memory on the CPU; on a GPU, GPU_SHARE of the memory it has free. With the CPU figure
# SRResNet x4 in bf16 runs its body on tiles of about 470 LR pixels a side (its 42-pixel margin
# adds about a fifth to the body's work) and its tail on pieces of 200 (STAGE_BUDGET's), and the
# enlarger stays within 1.5 x the 8-bit output + 300 MB above the import baseline (docs/speed.md).
ACTIVATION_BUDGET = 160 * 10**6
GPU_SHARE = 0.5
# The float64 stages of a piece (colour, bicubic, rounding) hold a few (3, h, w) arrays of the
# big grid or the output grid, whichever is larger: about STAGE_BYTES per pixel there.
STAGE_BUDGET, STAGE_BYTES = 64 * 10**6, 100
MIN_TILE = 16  # no tile or piece has a core smaller than this a side unless the image is
UNKNOWN_TILE = 256  # model-input pixels a side for a network whose layers are hidden (ONNX)
_PROBE = 16  # the side of the probe input the feature maps are measured on


class Parts(NamedTuple):
    """A network as the enlarger runs it: ``body`` on tiles (model input -> what ``tail`` reads, or
    the output when ``tail`` is None), ``tail`` on pieces of the body's output; each margin in the
    pixels of the part's input."""

    body: Callable[[torch.Tensor], torch.Tensor] | None  # None: plain bicubic
    tail: Callable[[torch.Tensor], torch.Tensor] | None
    body_margin: int
    tail_margin: int

    @classmethod
    def of(cls, up: Upscaler) -> Parts:
        """SRResNet's body and upsampling tail apart, unless ``--tile`` sets the whole network's tile;
        every other network whole."""
        net = up.net
        if net is None:
            return cls(None, None, 0, 0)
        inner = net.net if isinstance(net, SelfEnsemble) else net  # an ensemble keeps SRResNet's parts apart too
        if isinstance(inner, SRResNet) and up.tile is None:
            return cls(net.features, net.reconstruct, receptive_radius(nn.ModuleList([inner.head, inner.trunk])),
                       receptive_radius(nn.ModuleList([inner.upsample, inner.tail])))
        return cls(net, None, receptive_radius(net), 0)


class NetTile(NamedTuple):
    """A tile the network runs on (LR rows and columns [start, stop)) and the pieces of it that the
    tail and the stages run on, in LR pixels."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    pieces: list[tuple[tuple[int, int], tuple[int, int]]]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc's
    except (AttributeError, OSError, TypeError):  # another C library, or none to ask
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``), between tiles: the
    feature maps a tile frees stay in the heap otherwise, and over a large photo's many tiles the
    heap grows beside the output image (by hundreds of MB for a 12-megapixel photo x4: docs/speed.md)."""
    if _TRIM is not None:
        _TRIM(0)


def activation_budget(device: torch.device, free: int | None = None) -> int:
    """Bytes the feature maps of one tile may take: ACTIVATION_BUDGET on the CPU; on a GPU,
    GPU_SHARE of ``free`` (default: the device's free memory now)."""
    if device.type != "cuda":
        return ACTIVATION_BUDGET
    if free is None:
        free, _ = torch.cuda.mem_get_info(device)
    return int(free * GPU_SHARE)


class _LiveBytes:
    """Inside ``with``, the most bytes the modules of ``net`` held in their outputs at once (``peak``).

    Each output counts from when it is made until its tensor is freed (CPython frees it as its last
    reference goes, and a finalizer sees the moment); outputs that share storage (in-place
    activations, containers passing on their last child's output) count once."""

    def __init__(self, net: nn.Module):
        self.net, self.live, self.peak, self.counted = net, 0, 0, set()

    def _release(self, storage: int, size: int) -> None:
        self.live -= size
        self.counted.discard(storage)

    def _made(self, module, args, output) -> None:
        if isinstance(output, torch.Tensor) and output.untyped_storage().data_ptr() not in self.counted:
            storage, size = output.untyped_storage().data_ptr(), output.untyped_storage().nbytes()
            self.counted.add(storage)
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(output, self._release, storage, size)

    def __enter__(self) -> _LiveBytes:
        self.handles = [m.register_forward_hook(self._made) for m in self.net.modules()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def tile_costs(up: Upscaler, parts: Parts) -> tuple[float, float] | None:
    """(bytes per model-input pixel a tile of the body holds, bytes per body-output pixel a piece
    of the tail holds), measured on a small probe in the model's precision: the most its feature
    maps hold at once, and the body's output, which is kept for the tail. None when the layers are hidden."""
    net = up.net
    if net is None or not any(True for _ in net.parameters()):
        return None
    probe = torch.zeros(1, 1 if up.color == "y" else 3, _PROBE, _PROBE, device=up.device)
    if up.precision.channels_last:
        probe = probe.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), up.precision.autocast():
        with _LiveBytes(net) as body:
            out = parts.body(probe)
        with _LiveBytes(net) as tail:
            if parts.tail is not None:
                parts.tail(out)
    return (body.peak + out.untyped_storage().nbytes()) / _PROBE**2, tail.peak / _PROBE**2


def cuts(length: int, n: int) -> list[int]:
    """[0, ..., length] in at most ``n`` pieces of one size, the last one shorter: few distinct tile
    shapes, since oneDNN builds its kernels anew for each input shape (a second or more a model)."""
    size = -(-length // n)
    return list(range(0, length, size)) + [length]


def choose_grid(height: int, width: int, margin: int, max_area: float) -> tuple[list[int], list[int]]:
    """Cuts [0, ..., height] and [0, ..., width] into tiles of one size (``cuts``) whose regions (the tile and
    ``margin`` on its inner sides) hold at most ``max_area`` pixels, computing the fewest pixels
    (cores and margins) in all; the fewest tiles among equals. Tiles of MIN_TILE when none fit."""

    def extent(length: int, n: int) -> tuple[int, int]:  # (the largest region, pixels computed) along an axis cut in n
        return -(-length // n) + margin * min(n - 1, 2), length + 2 * margin * (n - 1)

    best = None
    for n_rows in range(1, max(1, height // MIN_TILE) + 1):
        region_h, total_h = extent(height, n_rows)
        room = int(max_area // region_h)  # the widest region that fits beside it
        n_cols = 1 if width <= room else 2 if extent(width, 2)[0] <= room else -(-width // max(1, room - 2 * margin))
        while n_cols <= max(1, width // MIN_TILE) and extent(width, n_cols)[0] > room:
            n_cols += 1
        if n_cols > max(1, width // MIN_TILE):
            continue
        key = (total_h * extent(width, n_cols)[1], n_rows * n_cols)
        if best is None or key < best[0]:
            best = key, n_rows, n_cols
    _, n_rows, n_cols = best or (None, max(1, height // MIN_TILE), max(1, width // MIN_TILE))
    return cuts(height, n_rows), cuts(width, n_cols)


def plan(up: Upscaler, parts: Parts, height: int, width: int, out_per_lr: float, budget: int | None = None) -> list[NetTile]:
    """The tiles an ``height`` x ``width`` LR image is enlarged in, each with its pieces.

    ``out_per_lr``: output pixels per LR pixel (scale² or outscale²). ``budget``: bytes for one
    tile's feature maps (default ``activation_budget(up.device)``). ``up.tile`` (model-input
    pixels) fixes the network's tiles instead of the budget.
    """
    pre = up.scale // up.input_scale if up.net is not None else 1  # model-input pixels per LR pixel, a side
    budget = activation_budget(up.device) if budget is None else budget
    costs = tile_costs(up, parts)
    # The body's margin in LR pixels; a pre-upsampled model's input also reads two bicubic taps further.
    margin = -(-parts.body_margin // pre) + parts.tail_margin + (2 if pre > 1 else 0)
    if up.net is None:
        rows, cols = [0, height], [0, width]
    elif up.tile is not None:
        core = max(1, up.tile // pre)
        rows, cols = cuts(height, -(-height // core)), cuts(width, -(-width // core))
    else:
        area = (UNKNOWN_TILE / pre + 2 * margin) ** 2 if costs is None else budget / (costs[0] * pre * pre)
        rows, cols = choose_grid(height, width, margin, area)
    # Pieces: the stages' float64 arrays, and the tail's maps, within their budgets.
    piece_area = STAGE_BUDGET / (STAGE_BYTES * max(up.scale**2 if up.net is not None else 1, out_per_lr))
    if parts.tail is not None and costs is not None:
        piece_area = min(piece_area, budget / costs[1])
    tiles = []
    for r0, r1 in zip(rows, rows[1:]):
        for c0, c1 in zip(cols, cols[1:]):
            sub_rows, sub_cols = choose_grid(r1 - r0, c1 - c0, parts.tail_margin, piece_area)
            pieces = [((r0 + a, r0 + b), (c0 + c, c0 + d)) for a, b in zip(sub_rows, sub_rows[1:])
                      for c, d in zip(sub_cols, sub_cols[1:])]
            tiles.append(NetTile((r0, r1), (c0, c1), pieces))
    return tiles


def output_size(height: int, width: int, scale: int, outscale: float | None) -> tuple[int, int]:
    """round(H * outscale) x round(W * outscale), halves rounded up; ``scale`` x without it."""
    if outscale is None:
        return height * scale, width * scale
    if not outscale > 1:
        raise UserError(f"outscale must be greater than 1, got {outscale}")
    return math.floor(height * outscale + 0.5), math.floor(width * outscale + 0.5)


class Axis:
    """One image axis through the stages: LR length ``lr``, big-grid (model output) length
    ``big``, output length ``out``."""

    def __init__(self, lr: int, factor: int, out: int):
        self.lr, self.factor, self.big, self.out = lr, factor, lr * factor, out

    def big_span(self, start: int, stop: int) -> tuple[int, int]:
        """Big-grid pixels that output pixels [start, stop) read (an axis that keeps its length is not resized)."""
        if self.out == self.big:
            return start, stop
        return source_span(self.big, self.out, self.out / self.big, start, stop)

    def to_out(self, img: np.ndarray, axis: int, start: int, stop: int, offset: int) -> np.ndarray:
        if self.out == self.big:
            return img
        return resize_span(img, axis, self.big, self.out, self.out / self.big, start, stop, offset)

    def lr_span_for_big(self, start: int, stop: int) -> tuple[int, int]:
        """LR pixels that big-grid pixels [start, stop) of ``imresize(lr, factor)`` read."""
        return source_span(self.lr, self.big, self.factor, start, stop)

    def bicubic_big(self, img: np.ndarray, axis: int, start: int, stop: int, offset: int) -> np.ndarray:
        return resize_span(img, axis, self.lr, self.big, self.factor, start, stop, offset)

    def lr_span_for_out(self, start: int, stop: int) -> tuple[int, int]:
        """LR pixels that output pixels [start, stop) of ``imresize(lr, size=out)`` read (alpha)."""
        return source_span(self.lr, self.out, self.out / self.lr, start, stop)

    def lr_to_out(self, img: np.ndarray, axis: int, start: int, stop: int, offset: int) -> np.ndarray:
        return resize_span(img, axis, self.lr, self.out, self.out / self.lr, start, stop, offset)

    def owned(self, start: int, stop: int) -> tuple[int, int]:
        """The output pixels that LR pixels [start, stop) own: each output pixel belongs to one piece."""
        return start * self.out // self.lr, stop * self.out // self.lr
