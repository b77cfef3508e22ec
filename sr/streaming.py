"""Enlarging a photo tile by tile, from the decoded file to the written one, in bounded memory.

    image, kind = enlarge_streaming(upscaler, read_photo("in.jpg", compact=True), "jpg", outscale=2)
    write_image("out.jpg", image, photo, "jpg")

The whole-image path (``sr.photo_enlarge.enlarge_photo``) holds every stage of a photo as a
full-size float64 array: 77 bytes per output pixel, 15 GB for a 12-megapixel photo x4. Here
the output is cut into tiles, and each is computed from the decoded input alone, through
every stage, straight into the 8-bit (or 16-bit) image that is written:

    LR rows/cols the tile reads                               (decoded input: uint8 or float32)
    -> model input: the LR, its Y, or their bicubic enlargement  (upsampled layout)
    -> the model's output, clipped; a Y model's CbCr by bicubic  (the "big" grid, scale x the LR)
    -> grey: the mean of the three channels
    -> MATLAB bicubic to --outscale                              (the output grid)
    -> alpha (bicubic from the LR, or the model), 8/16-bit rounding, JPEG's white composite
    -> pasted into the output image

Each stage is local, so a tile needs only a margin of its input: the model's receptive
radius (``sr.tiling.receptive_radius``; zero padding at the image border, as on the whole
image) and the taps of each bicubic kernel (``sr.imresize.source_span``, mirrored at the
border, as on the whole image). Working backwards from the output tile to the input rows it
reads gives exactly those margins, so the result is the whole-image path's (bicubic pieces
bit for bit, the model to float rounding: within 1/255 after rounding to 8 bits).

What is held whole: the decoded input (uint8: 3 bytes per input pixel), the output image
(Pillow keeps RGB as 4 bytes per pixel), and for two cases a float copy at input size: an
image with alpha (its hidden colour is filled from the visible pixels, a global pyramid:
``fill_transparent``) and a model with InstanceNorm (its whole-image statistics are measured
on the whole model input first, as ``sr.tiling.tiled_forward`` does).
"""

from __future__ import annotations

import math
import sys
from contextlib import ExitStack
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from sr.color import rgb_to_ycbcr, ycbcr_to_rgb
from sr.errors import UserError
from sr.imresize import imresize, resize_span, source_span
from sr.photo import ALPHA_UPSAMPLERS, OutputKind, Photo, output_kind, output_pixels
from sr.photo_enlarge import fill_transparent
from sr.precision import Precision
from sr.protocol import predict
from sr.tiling import plan_tiles, receptive_radius, refuse_whole_image_norm, whole_image_norms

# Inputs up to this many LR pixels run as one tile (a 1-megapixel result costs no margins);
# larger ones are tiled. ``--tile`` (model-input pixels) overrides the automatic size.
AUTO_TILE, AUTO_TILE_ABOVE = 256, 512 * 512
# The automatic tile keeps the model's largest activation (a float32 feature map) and the
# tile's float64 stages each under these sizes: SRResNet x4 gets 78 LR pixels a side (its
# 256-channel maps at twice the LR size are the largest; margins of 41 make that about 4x
# the compute of the untiled image), FSRCNN x4 128 (the stages' limit), FSRCNN x2 256.
ACTIVATION_BUDGET = 100 * 2**20
STAGE_BUDGET = 25 * 2**20


class Network(Protocol):
    """What the streaming enlarger needs to know of a loaded model (``sr.inference.Upscaler``)."""

    net: nn.Module | None  # None: plain bicubic
    scale: int
    color: str  # "y" or "rgb"
    layout: str  # "upsampled" or "lr-hr"
    device: torch.device
    precision: Precision
    tile: int | None  # model-input pixels; None: automatic

    @property
    def model_scale(self) -> int: ...


class _Axis:
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

    def lr_span_for_bicubic_big(self, start: int, stop: int) -> tuple[int, int]:
        """LR pixels that big-grid pixels [start, stop) of ``imresize(lr, factor)`` read."""
        return source_span(self.lr, self.big, self.factor, start, stop)

    def bicubic_big(self, img: np.ndarray, axis: int, start: int, stop: int, offset: int) -> np.ndarray:
        return resize_span(img, axis, self.lr, self.big, self.factor, start, stop, offset)

    def lr_span_for_out(self, start: int, stop: int) -> tuple[int, int]:
        """LR pixels that output pixels [start, stop) of ``imresize(lr, size=out)`` read (alpha)."""
        return source_span(self.lr, self.out, self.out / self.lr, start, stop)

    def lr_to_out(self, img: np.ndarray, axis: int, start: int, stop: int, offset: int) -> np.ndarray:
        return resize_span(img, axis, self.lr, self.out, self.out / self.lr, start, stop, offset)


def output_size(height: int, width: int, scale: int, outscale: float | None) -> tuple[int, int]:
    """round(H * outscale) x round(W * outscale), halves rounded up; ``scale`` x without it."""
    if outscale is None:
        return height * scale, width * scale
    if not outscale > 1:
        raise UserError(f"outscale must be greater than 1, got {outscale}")
    return math.floor(height * outscale + 0.5), math.floor(width * outscale + 0.5)


def auto_tile(net: nn.Module | None, color: str, scale: int, model_scale: int) -> int:
    """An LR tile side whose model activations and float64 stages stay within the budgets.

    The model's largest feature map per input pixel is measured on a 16x16 probe (forward
    hooks); an ONNX model hides its layers and gets ``AUTO_TILE``.
    """
    pre = scale // model_scale  # LR -> model input (upsampled layout: the bicubic enlargement)
    # The stages hold a few (3, h, w) float64 arrays of the big tile: about 100 bytes per big pixel.
    tile = int(math.sqrt(STAGE_BUDGET / 100)) // scale
    if net is None:
        return max(16, tile)
    largest = 0

    def measure(module, args, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output[0].numel())

    parameters = list(net.parameters())  # none: an OnnxModel, whose feature maps are hidden
    if parameters and all(p.device.type == "cpu" for p in parameters):
        modules = [m for m in net.modules() if not list(m.children())]
        handles = [m.register_forward_hook(measure) for m in modules]
        try:
            with torch.inference_mode():
                net(torch.zeros(1, 1 if color == "y" else 3, 16, 16))
        finally:
            for h in handles:
                h.remove()
    if largest == 0:
        return max(16, min(tile, AUTO_TILE // pre))
    per_pixel = largest / 256 * 4  # float32 bytes per model-input pixel
    region = int(math.sqrt(ACTIVATION_BUDGET / per_pixel))  # model-input pixels a side, margin included
    core = (region - 2 * receptive_radius(net)) // pre
    return max(16, min(tile, core))


def enlarge_streaming(up: Network, photo: Photo, fmt: str, outscale: float | None = None,
                      alpha_upsampler: str = "bicubic", progress: bool = False) -> tuple[Image.Image, OutputKind]:
    """``photo`` enlarged by ``up``'s model, then MATLAB bicubic to ``outscale`` (None: the
    model's scale), as the image to write in ``fmt`` and its ``OutputKind``.

    The same picture as ``sr.photo_enlarge.enlarge_photo`` with ``up``'s whole-image enlarger
    (within 1/255), computed tile by tile (see the module docstring). ``photo`` may be read
    with ``compact=True``. ``progress``: a tqdm bar over the tiles when there are several.
    """
    if alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise ValueError(f"alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, got {alpha_upsampler!r}")
    net = up.net
    factor = up.scale if net is not None else 1  # plain bicubic: one resize straight to the output
    height, width = photo.size
    out_h, out_w = output_size(height, width, up.scale, outscale)
    rows, cols = _Axis(height, factor, out_h), _Axis(width, factor, out_w)
    kind = output_kind(photo, fmt)

    pre = factor // up.model_scale if net is not None else 1
    if up.tile is not None:
        tile = max(1, up.tile // pre)
    elif height * width > AUTO_TILE_ABOVE:
        tile = auto_tile(net, up.color, factor, up.model_scale if net is not None else 1)
    else:
        tile = max(height, width)
    cuts_h, cuts_w = list(range(0, height, tile)) + [height], list(range(0, width, tile)) + [width]
    pieces = [(i, j) for i in range(len(cuts_h) - 1) for j in range(len(cuts_w) - 1)]

    colour = photo.rgb
    alpha = None if photo.alpha is None else np.asarray(photo.alpha, dtype=np.float64)
    if alpha is not None:
        colour = fill_transparent(np.asarray(colour, dtype=np.float64), alpha)
    stage = _ModelStage(up, rows, cols)
    canvas = Image.new(kind.mode, (out_w, out_h))
    with ExitStack() as stack:
        if net is not None and len(pieces) > 1:
            stage.fix_norms(stack, colour, tile)
        bar = tqdm(pieces, desc="tiles", unit="tile", leave=False, file=sys.stderr, dynamic_ncols=True,
                   disable=not progress or len(pieces) == 1)
        for i, j in bar:
            # LR rows [t0, t1) own output rows [f0, f1): every output row belongs to one tile.
            f0, f1 = cuts_h[i] * out_h // height, cuts_h[i + 1] * out_h // height
            g0, g1 = cuts_w[j] * out_w // width, cuts_w[j + 1] * out_w // width
            if f0 == f1 or g0 == g1:
                continue
            values = stage.to_output(colour, f0, f1, g0, g1, grey=photo.grey)  # (C, h, w) float64
            tile_alpha = None
            if alpha is not None:
                if alpha_upsampler == "model":
                    planes = np.broadcast_to(photo.alpha[..., None], photo.alpha.shape + (3,))
                    tile_alpha = stage.to_output(planes, f0, f1, g0, g1, grey=True)[0]
                else:  # one bicubic from the original, not two
                    r0, r1 = rows.lr_span_for_out(f0, f1)
                    c0, c1 = cols.lr_span_for_out(g0, g1)
                    a = rows.lr_to_out(alpha[r0:r1, c0:c1], 0, f0, f1, r0)
                    tile_alpha = np.clip(cols.lr_to_out(a, 1, g0, g1, c0), 0, 255)
            pixels = output_pixels(values.transpose(1, 2, 0), tile_alpha, kind)
            canvas.paste(Image.fromarray(pixels), (g0, f0))
    return canvas, kind


class _ModelStage:
    """The model (and the bicubic around it) on a piece of the image."""

    def __init__(self, up: Network, rows: _Axis, cols: _Axis):
        self.up, self.rows, self.cols = up, rows, cols
        self.net = up.net
        self.radius = receptive_radius(up.net) if up.net is not None else 0

    def _predict(self, x: np.ndarray, model_scale: int) -> np.ndarray:
        """(C, h, w) float64 model input in [0, 255] -> (C, H, W) float32 output in [0, 255], clipped."""
        out = predict(self.net, x, model_scale, self.up.device, self.up.precision).numpy()
        out *= np.float32(255.0)  # float32 as on the whole image (Upscaler.enlarge)
        return out

    def fix_norms(self, stack: ExitStack, colour: np.ndarray, tile: int) -> None:
        """InstanceNorm models: measure the whole-image statistics once (on the whole model
        input, which is then dropped), and hold them while the tiles run."""
        if not any(isinstance(m, nn.InstanceNorm2d) for m in self.net.modules()):
            refuse_whole_image_norm(self.net)  # an ONNX graph that has them hidden
            return
        up, rgb = self.up, np.asarray(colour, dtype=np.float64)
        planes = rgb_to_ycbcr(rgb)[..., :1] if up.color == "y" else rgb
        if up.layout == "upsampled":
            planes = imresize(planes, up.scale)
        x = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)))[None].to(up.device, torch.float32) / 255.0
        del rgb, planes
        if up.precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model_tile = tile * (up.scale // up.model_scale)
        with up.precision.autocast():
            stack.enter_context(whole_image_norms(self.net, x, plan_tiles(x.shape[-2], x.shape[-1], model_tile, self.radius)))

    def to_output(self, source: np.ndarray, f0: int, f1: int, g0: int, g1: int, grey: bool) -> np.ndarray:
        """Output pixels [f0, f1) x [g0, g1) of ``source`` (LR (H, W, 3) in [0, 255]) enlarged:
        (C, f1 - f0, g1 - g0) float64 in [0, 255], C 1 for ``grey`` (the mean of the model's three channels)."""
        rows, cols = self.rows, self.cols
        b0, b1 = rows.big_span(f0, f1)
        c0, c1 = cols.big_span(g0, g1)
        big = self.big(source, b0, b1, c0, c1)
        if grey:
            big = big.mean(axis=0, keepdims=True)  # resized on one plane
        out = cols.to_out(rows.to_out(big, 1, f0, f1, b0), 2, g0, g1, c0)
        return np.clip(out, 0, 255, out=out)

    def big(self, source: np.ndarray, b0: int, b1: int, c0: int, c1: int) -> np.ndarray:
        """Big-grid pixels [b0, b1) x [c0, c1): (3, h, w) float64, what the whole-image
        enlarger gives there (clipped to [0, 255]; plain bicubic: the LR itself)."""
        up, rows, cols, r = self.up, self.rows, self.cols, self.radius

        def lr(top: int, bottom: int, left: int, right: int) -> np.ndarray:  # (h, w, 3) float64
            return np.asarray(source[top:bottom, left:right], dtype=np.float64)

        if self.net is None:
            return lr(b0, b1, c0, c1).transpose(2, 0, 1)
        s = up.scale
        if up.layout == "lr-hr":
            # The LR pixels under the tile, with the receptive radius around them.
            top, bottom = max(0, b0 // s - r), min(rows.lr, -(-b1 // s) + r)
            left, right = max(0, c0 // s - r), min(cols.lr, -(-c1 // s) + r)
            crop = lr(top, bottom, left, right)
            keep = (slice(None), slice(b0 - top * s, b1 - top * s), slice(c0 - left * s, c1 - left * s))
            if up.color == "rgb":
                out = self._predict(crop.transpose(2, 0, 1), s)[keep]
                return np.clip(out, 0, 255, out=out).astype(np.float64)
            ycbcr = np.empty((b1 - b0, c1 - c0, 3))
            ycbcr[..., 0] = self._predict(rgb_to_ycbcr(crop)[None, ..., 0], s)[keep][0]
            # Chroma from the bicubic enlargement of the LR's CbCr (bicubic is linear, YCbCr affine).
            t, b = rows.lr_span_for_bicubic_big(b0, b1)
            lt, rt = cols.lr_span_for_bicubic_big(c0, c1)
            cbcr = rgb_to_ycbcr(lr(t, b, lt, rt))[..., 1:].transpose(2, 0, 1)
            cbcr = cols.bicubic_big(rows.bicubic_big(cbcr, 1, b0, b1, t), 2, c0, c1, lt)
            ycbcr[..., 1:] = cbcr.transpose(1, 2, 0)
            rgb = ycbcr_to_rgb(ycbcr)
            return np.clip(rgb, 0, 255, out=rgb).transpose(2, 0, 1)

        # Upsampled layout: the model reads the bicubic enlargement, around the tile by its radius.
        m0, m1 = max(0, b0 - r), min(rows.big, b1 + r)
        n0, n1 = max(0, c0 - r), min(cols.big, c1 + r)
        t, b = rows.lr_span_for_bicubic_big(m0, m1)
        lt, rt = cols.lr_span_for_bicubic_big(n0, n1)
        crop = lr(t, b, lt, rt)
        planes = (rgb_to_ycbcr(crop) if up.color == "y" else crop).transpose(2, 0, 1)
        bicubic = cols.bicubic_big(rows.bicubic_big(planes, 1, m0, m1, t), 2, n0, n1, lt)  # (3, mh, mw)
        keep = (slice(None), slice(b0 - m0, b1 - m0), slice(c0 - n0, c1 - n0))
        if up.color == "rgb":
            out = self._predict(bicubic, 1)[keep]
            return np.clip(out, 0, 255, out=out).astype(np.float64)
        ycbcr = bicubic[keep].transpose(1, 2, 0).copy()
        ycbcr[..., 0] = self._predict(bicubic[:1], 1)[keep][0]
        rgb = ycbcr_to_rgb(ycbcr)
        return np.clip(rgb, 0, 255, out=rgb).transpose(2, 0, 1)
