"""Enlarging a photo tile by tile, from the decoded file to the written one, in bounded memory.

    photo = read_photo("in.jpg", compact=True)
    image, kind = enlarge(Upscaler.load("srresnet_x4"), photo, "jpg", outscale=2)
    write_image("out.jpg", image, photo, "jpg")

Each piece of the output is computed from the decoded input alone, through every stage, straight
into the 8-bit (or 16-bit) image that is written:

    LR rows/cols the piece reads                              (decoded input: uint8 or float32)
    -> model input: the LR, its Y, or their bicubic enlargement  (upsampled layout)
    -> the model's output, clipped; a Y model's CbCr by bicubic  (the "big" grid, scale x the LR)
    -> grey: the mean of the three channels
    -> MATLAB bicubic to --outscale                              (the output grid)
    -> alpha (bicubic from the LR, or the model), 8/16-bit rounding, JPEG's white composite
    -> pasted into the output image

Pieces come in two sizes, each set by what it holds (``sr.enlarge_plan``). The network runs on large
tiles: their feature maps are the memory that counts, and the margin each tile recomputes is the
time that counts. SRResNet's body (64-channel maps at the LR size, a 38-pixel margin) runs there;
its upsampling tail, whose 256-channel maps at twice the LR size are the network's largest, runs
on sub-tiles of the body's output with a margin of its own (4 LR pixels). The float64 stages run
on the same sub-tiles. A small image is one tile.

Each stage is local, so a piece needs only a margin of its input: the receptive radius of the
network part that makes it (``sr.tiling.receptive_radius``; zero padding at the image border, as
on the whole image) and the taps of each bicubic kernel (``sr.imresize.source_span``, mirrored at
the border, as on the whole image). Working backwards from the output piece to the input rows it
reads gives exactly those margins, so the result is the whole image's (bicubic pieces bit for
bit, the model to float rounding: within 1/255 after rounding to 8 bits; tests/whole_image.py is
the whole-image oracle the tests compare with).

Held whole: the decoded input (uint8: 3 bytes a pixel) and the output image (Pillow: 4 bytes a
RGB pixel); with alpha, a float copy of the colour (its hidden colour filled from the visible
pixels: ``fill_transparent``); for InstanceNorm, a float copy of the model input (``sr.tiling``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from sr.color import rgb_to_ycbcr, ycbcr_to_rgb
from sr.imresize import imresize
from sr.enlarge_plan import Axis, Parts, output_size, plan, release_freed_memory
from sr.photo import Photo
from sr.photo_write import OutputKind, output_kind, output_pixels
from sr.tiling import plan_tiles, refuse_whole_image_norm, whole_image_norms
from sr.upscaler import Upscaler

# How the alpha plane is enlarged (``enlarge``'s ``alpha_upsampler``, eval.py's --alpha-upsampler).
ALPHA_UPSAMPLERS = ("bicubic", "model")


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Give fully transparent pixels (alpha == 0) the colour of their visible neighbours.

    Colour under alpha is straight (not premultiplied), and where alpha is 0 it is whatever
    the program that saved the file left there, often black. The model and bicubic both
    mix each output pixel from a neighbourhood, so that hidden colour would bleed into
    the half-transparent edge of the enlarged picture as a dark halo. Filling it from the
    visible pixels (pull-push: average down a pyramid with alpha > 0 as weight, then fill
    each hole from the next coarser level) changes only pixels nobody can see.
    (Enlarging premultiplied colour and dividing by the enlarged alpha is the textbook
    answer, but the division blows up model error wherever alpha is small.)

    rgb: (H, W, 3) in [0, 255]; alpha: (H, W). Returns a new (H, W, 3) array.
    """
    known = alpha > 0
    if known.all() or not known.any():
        return rgb
    levels = []
    colour, weight = rgb * known[..., None], known.astype(np.float64)
    while True:
        levels.append((colour, weight))
        h, w = weight.shape
        if h == 1 and w == 1:
            break
        # 2x2 sums; an odd edge is padded with zero weight.
        pad = ((0, h % 2), (0, w % 2))
        colour = np.pad(colour, pad + ((0, 0),))
        weight = np.pad(weight, pad)
        colour = colour.reshape(colour.shape[0] // 2, 2, colour.shape[1] // 2, 2, 3).sum(axis=(1, 3))
        weight = weight.reshape(weight.shape[0] // 2, 2, weight.shape[1] // 2, 2).sum(axis=(1, 3))
    filled = levels[-1][0] / levels[-1][1][..., None]  # 1x1, weight > 0 since known.any()
    for colour, weight in reversed(levels[:-1]):
        h, w = weight.shape
        coarse = filled.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
        mean = colour / np.maximum(weight, 1e-12)[..., None]
        filled = np.where(weight[..., None] > 0, mean, coarse)
    # Visible pixels keep their exact values.
    return np.where(known[..., None], rgb, filled)


def enlarge(up: Upscaler, photo: Photo, fmt: str = "png", outscale: float | None = None,
            alpha_upsampler: str = "bicubic", progress: str | None = None,
            estimate: Callable[[float], None] | None = None) -> tuple[Image.Image, OutputKind]:
    """``photo`` enlarged by ``up``'s model, then MATLAB bicubic to ``outscale`` (None: the
    model's scale), as the image to write in ``fmt`` and its ``OutputKind``.

    Alpha, grey and 16-bit are kept (see the module docstring for how, and what memory it
    takes); ``photo`` may be read with ``compact=True``. ``alpha_upsampler``: "bicubic" resizes
    the alpha plane straight to the output size; "model" runs the model on it. ``progress``:
    a tqdm bar over the pieces, labelled so. ``estimate``: called once, after the first of several
    pieces, with the seconds the rest should take (the first tile's network and piece, per LR pixel).
    """
    if alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise ValueError(f"alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, got {alpha_upsampler!r}")
    height, width = photo.size
    factor = up.scale if up.net is not None else 1  # plain bicubic: one resize straight to the output
    out_h, out_w = output_size(height, width, up.scale, outscale)
    rows, cols = Axis(height, factor, out_h), Axis(width, factor, out_w)
    kind = output_kind(photo, fmt)
    parts = Parts.of(up)
    tiles = plan(up, parts, height, width, (out_h * out_w) / (height * width))

    colour = photo.rgb
    alpha = None if photo.alpha is None else np.asarray(photo.alpha, dtype=np.float64)
    if alpha is not None:
        colour = fill_transparent(np.asarray(colour, dtype=np.float64), alpha)
    sources = [colour]
    if alpha is not None and alpha_upsampler == "model":
        sources.append(np.broadcast_to(photo.alpha[..., None], photo.alpha.shape + (3,)))
    canvas = Image.new(kind.mode, (out_w, out_h))
    pieces = sum(len(t.pieces) for t in tiles)
    # One piece has no progress to show: its bar would only flash up and be wiped.
    bar = tqdm(total=pieces, desc=progress, unit="tile", leave=False, file=sys.stderr,
               dynamic_ncols=True, disable=progress is None or pieces == 1)
    with ExitStack() as stack:
        stack.enter_context(bar)
        if len(tiles) > 1:
            _fix_norms(up, parts, stack, colour, max(max(t.rows[1] - t.rows[0], t.cols[1] - t.cols[0]) for t in tiles))
        start = time.perf_counter()
        for n, tile in enumerate(tiles):
            held = [_Tile(up, parts, rows, cols, source, tile.rows, tile.cols) for source in sources]
            release_freed_memory()  # the body's maps, before the pieces allocate theirs
            body = time.perf_counter() - start  # the first tile's network: what each tile's costs
            for m, ((t0, t1), (s0, s1)) in enumerate(tile.pieces):
                (f0, f1), (g0, g1) = rows.owned(t0, t1), cols.owned(s0, s1)
                if f0 == f1 or g0 == g1:
                    continue
                values = held[0].pixels(f0, f1, g0, g1, grey=photo.grey)  # (C, h, w) float64
                tile_alpha = None
                if alpha is not None and len(held) > 1:
                    tile_alpha = held[1].pixels(f0, f1, g0, g1, grey=True)[0]
                elif alpha is not None:  # one bicubic from the original, not two
                    (r0, r1), (c0, c1) = rows.lr_span_for_out(f0, f1), cols.lr_span_for_out(g0, g1)
                    a = rows.lr_to_out(alpha[r0:r1, c0:c1], 0, f0, f1, r0)
                    tile_alpha = np.clip(cols.lr_to_out(a, 1, g0, g1, c0), 0, 255)
                canvas.paste(Image.fromarray(output_pixels(values.transpose(1, 2, 0), tile_alpha, kind)), (g0, f0))
                bar.update()
                if n == m == 0 and estimate is not None and pieces > 1:  # the rest, per LR pixel, from the first
                    piece, area = time.perf_counter() - start - body, height * width
                    first = (tile.rows[1] - tile.rows[0]) * (tile.cols[1] - tile.cols[0])
                    estimate(body * (area / first - 1) + piece * (area / ((t1 - t0) * (s1 - s0)) - 1))
            held.clear()  # this tile's network output goes before the next tile's is made, and
            release_freed_memory()  # what its maps took goes back to the system
    return canvas, kind


def _fix_norms(up: Upscaler, parts: Parts, stack: ExitStack, colour: np.ndarray, tile: int) -> None:
    """InstanceNorm models: measure the whole-image statistics once (on the whole model input,
    which is then dropped), and hold them while the tiles run, as ``sr.tiling.tiled_forward`` does."""
    net = up.net
    if net is None:
        return
    if not any(isinstance(m, nn.InstanceNorm2d) for m in net.modules()):
        refuse_whole_image_norm(net)  # an ONNX graph that has them hidden
        return
    rgb = np.asarray(colour, dtype=np.float64)
    planes = rgb_to_ycbcr(rgb)[..., :1] if up.color == "y" else rgb
    if up.layout == "upsampled":
        planes = imresize(planes, up.scale)
    x = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)))[None].to(up.device, torch.float32) / 255.0
    del rgb, planes
    if up.precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    side = tile * (up.scale // up.input_scale)  # the largest tile's side, in model-input pixels
    with up.precision.autocast():
        stack.enter_context(whole_image_norms(net, x, plan_tiles(x.shape[-2], x.shape[-1], side, parts.body_margin)))


def _as_image(out: torch.Tensor) -> np.ndarray:
    """A model output (C, h, w), any float dtype and device -> float32 in [0, 255], clipped, on the CPU
    (as ``sr.protocol.predict`` clamps, then scaled in float32 as on the whole image)."""
    values = out.float().clamp(0, 1).cpu().numpy()
    values *= np.float32(255.0)
    return values


class _Tile:
    """The network's output over one tile, held for its pieces: the tail's input (SRResNet's body
    features), the model's output on the big grid, or for plain bicubic the LR itself."""

    def __init__(self, up: Upscaler, parts: Parts, rows: Axis, cols: Axis, source: np.ndarray,
                 lr_rows: tuple[int, int], lr_cols: tuple[int, int]):
        self.up, self.parts, self.rows, self.cols, self.source = up, parts, rows, cols, source
        # The big-grid pixels this tile's output pieces read, bicubic taps of --outscale included.
        self.b0, self.b1 = rows.big_span(*rows.owned(*lr_rows))
        self.c0, self.c1 = cols.big_span(*cols.owned(*lr_cols))
        if up.net is None:
            return
        s, body, tail = up.scale, parts.body_margin, parts.tail_margin
        if up.layout == "upsampled":  # the model reads the bicubic enlargement, around the tile by its margin
            m0, m1 = max(0, self.b0 - body), min(rows.big, self.b1 + body)
            n0, n1 = max(0, self.c0 - body), min(cols.big, self.c1 + body)
            (t, b), (lt, rt) = rows.lr_span_for_big(m0, m1), cols.lr_span_for_big(n0, n1)
            planes = self._planes(t, b, lt, rt)[:1 if up.color == "y" else 3]
            x = cols.bicubic_big(rows.bicubic_big(planes, 1, m0, m1, t), 2, n0, n1, lt)
            with torch.inference_mode(), up.precision.autocast():
                out = parts.body(self._tensor(x))
            self.held = out[0, :, self.b0 - m0:self.b1 - m0, self.c0 - n0:self.c1 - n0]
            return
        # LR pixels whose features (or output) the pieces need, then the LR the body reads for them.
        self.l0, self.l1 = max(0, self.b0 // s - tail), min(rows.lr, -(-self.b1 // s) + tail)
        self.k0, self.k1 = max(0, self.c0 // s - tail), min(cols.lr, -(-self.c1 // s) + tail)
        top, bottom = max(0, self.l0 - body), min(rows.lr, self.l1 + body)
        left, right = max(0, self.k0 - body), min(cols.lr, self.k1 + body)
        planes = self._planes(top, bottom, left, right)
        with torch.inference_mode(), up.precision.autocast():
            out = parts.body(self._tensor(planes[:1] if up.color == "y" else planes))
        if parts.tail is not None:  # features at the LR size
            self.held = out[..., self.l0 - top:self.l1 - top, self.k0 - left:self.k1 - left]
        else:
            self.held = out[0, :, self.b0 - top * s:self.b1 - top * s, self.c0 - left * s:self.c1 - left * s]

    def _planes(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """(3, h, w) float64: the LR's RGB there, or its YCbCr for a Y model."""
        crop = np.asarray(self.source[top:bottom, left:right], dtype=np.float64)
        return (rgb_to_ycbcr(crop) if self.up.color == "y" else crop).transpose(2, 0, 1)

    def _tensor(self, planes: np.ndarray) -> torch.Tensor:
        up = self.up
        x = torch.from_numpy(np.ascontiguousarray(planes))[None].to(up.device, torch.float32) / 255.0
        return x.contiguous(memory_format=torch.channels_last) if up.precision.channels_last else x

    def _bicubic(self, b0: int, b1: int, c0: int, c1: int, planes: slice) -> np.ndarray:
        """The bicubic enlargement on big-grid pixels [b0, b1) x [c0, c1), unrounded, of those of the
        LR's planes (RGB, or YCbCr for a Y model)."""
        rows, cols = self.rows, self.cols
        (t, b), (lt, rt) = rows.lr_span_for_big(b0, b1), cols.lr_span_for_big(c0, c1)
        lr = self._planes(t, b, lt, rt)[planes]
        return cols.bicubic_big(rows.bicubic_big(lr, 1, b0, b1, t), 2, c0, c1, lt)

    def _toward(self, model: np.ndarray, bicubic: np.ndarray) -> np.ndarray:
        big = bicubic + self.up.detail * (model - bicubic)
        return np.clip(big, 0, 255, out=big)

    def _model(self, b0: int, b1: int, c0: int, c1: int) -> np.ndarray:
        """The model's output on big-grid pixels [b0, b1) x [c0, c1): (C, h, w) float32 in [0, 255]."""
        if self.parts.tail is None:
            return _as_image(self.held[:, b0 - self.b0:b1 - self.b0, c0 - self.c0:c1 - self.c0])
        s, margin = self.up.scale, self.parts.tail_margin
        top, bottom = max(self.l0, b0 // s - margin), min(self.l1, -(-b1 // s) + margin)
        left, right = max(self.k0, c0 // s - margin), min(self.k1, -(-c1 // s) + margin)
        with torch.inference_mode(), self.up.precision.autocast():
            out = self.parts.tail(self.held[..., top - self.l0:bottom - self.l0, left - self.k0:right - self.k0])
        return _as_image(out[0, :, b0 - top * s:b1 - top * s, c0 - left * s:c1 - left * s])

    def pixels(self, f0: int, f1: int, g0: int, g1: int, grey: bool) -> np.ndarray:
        """Output pixels [f0, f1) x [g0, g1): (C, h, w) float64 in [0, 255], C 1 for ``grey``
        (the mean of the model's three channels)."""
        rows, cols = self.rows, self.cols
        b0, b1 = rows.big_span(f0, f1)
        c0, c1 = cols.big_span(g0, g1)
        if self.up.net is None:  # plain bicubic: the LR itself
            big = np.asarray(self.source[b0:b1, c0:c1], dtype=np.float64).transpose(2, 0, 1)
        elif self.up.color == "rgb":
            big = self._model(b0, b1, c0, c1)
            big = np.clip(big, 0, 255, out=big).astype(np.float64)
            if self.up.detail != 1:  # toward bicubic: out = bicubic + detail x (model - bicubic)
                big = self._toward(big, self._bicubic(b0, b1, c0, c1, slice(0, 3)))
        else:  # a Y model's chroma: the bicubic enlargement of the LR's CbCr (bicubic is linear, YCbCr
            # affine, so this is the CbCr of the enlarged RGB; an upsampled-layout model's input has the same)
            pull = self.up.detail != 1  # then the bicubic Y too, to pull the model's Y toward
            ycbcr = self._bicubic(b0, b1, c0, c1, slice(0 if pull else 1, 3))
            y = self._model(b0, b1, c0, c1)[:1].astype(np.float64)
            big = ycbcr_to_rgb(np.concatenate([self._toward(y, ycbcr[:1]) if pull else y, ycbcr[-2:]]).transpose(1, 2, 0))
            big = np.clip(big, 0, 255, out=big).transpose(2, 0, 1)
        if grey:
            big = big.mean(axis=0, keepdims=True)  # resized on one plane
        out = cols.to_out(rows.to_out(big, 1, f0, f1, b0), 2, g0, g1, c0)
        return np.clip(out, 0, 255, out=out)


def crop_seconds(up: Upscaler, photo: Photo, side: int = 96) -> float:
    """Seconds ``up`` takes to enlarge a ``side`` x ``side`` crop of ``photo``, timed after a first
    run (which builds the kernels): what one model costs beside another on this machine."""
    crop = replace(photo, rgb=photo.rgb[:side, :side], alpha=None)
    enlarge(up, crop)
    start = time.perf_counter()
    enlarge(up, crop)
    return time.perf_counter() - start


def faster_note(up: Upscaler, faster: str, photo: Photo, amp: bool | None, left: float) -> str:
    """A line for an enlargement by ``up`` with ``left`` seconds to go: how much less ``faster`` (a
    shipped name) would take, the two timed on a crop of ``photo`` here and now."""
    ratio = crop_seconds(up, photo) / crop_seconds(Upscaler.load(faster, up.device, amp), photo)
    return (f"about {left / 60:.0f} more minutes with {up.name}; --weights {faster} takes 1/{ratio:.0f} of the time "
            "(both timed on a crop of this photo just now); going on")
