"""The whole-image enlarger: every stage of a photo held whole, in float64. The oracle the tests
compare ``sr.enlarge`` with (it computes the same picture tile by tile), kept here because that
is all it is for: 77 bytes per output pixel, 15 GB for a 12-megapixel photo x4.

    big = enlarge_whole(up, read_photo("in.png"), outscale=3.5)   # a Photo with float64 planes
    write_photo("out.png", big)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from sr.color import rgb_to_ycbcr, ycbcr_to_rgb
from sr.enlarge import ALPHA_UPSAMPLERS, fill_transparent
from sr.enlarge_plan import output_size
from sr.imresize import imresize
from sr.photo import Photo
from sr.protocol import predict
from sr.upscaler import Upscaler


def enlarge_rgb(up: Upscaler, rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) RGB in [0, 255], uint8 or float -> (h * scale, w * scale, 3) float in [0, 255], unrounded.

    Upsampled-layout models get the float bicubic enlargement, Y models the float Y; a Y
    model's output takes its colour (Cb, Cr) from the bicubic enlargement. ``up.detail`` below 1
    pulls the output (RGB, or a Y model's Y) toward the bicubic enlargement.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if up.net is None:
        return np.clip(imresize(rgb, up.scale), 0, 255)

    def forward(planes: np.ndarray) -> np.ndarray:  # (C, h, w) in [0, 255] -> (C, H, W) float32 in [0, 1]
        return predict(up.net, planes, up.input_scale, up.device, up.precision).numpy()

    def toward_bicubic(big: np.ndarray, bicubic: np.ndarray) -> np.ndarray:
        return np.clip(bicubic + up.detail * (np.clip(big, 0, 255) - bicubic), 0, 255)

    if up.color == "rgb":
        source = imresize(rgb, up.scale) if up.layout == "upsampled" else rgb
        big = forward(source.transpose(2, 0, 1)).transpose(1, 2, 0) * np.float32(255.0)
        return toward_bicubic(big, imresize(rgb, up.scale)) if up.detail != 1 else np.clip(big, 0, 255, out=big)
    # YCbCr is affine per pixel and bicubic is linear with weights summing to 1, so enlarging
    # the LR's YCbCr equals taking YCbCr of the enlarged RGB (to float rounding).
    ycbcr = rgb_to_ycbcr(rgb)
    if up.layout == "upsampled":
        big = imresize(ycbcr, up.scale)  # its Y is the model's input
        big[..., 0] = forward(big[None, ..., 0])[0] * 255.0
    else:
        y = forward(ycbcr[None, ..., 0])[0]
        big = np.empty(y.shape + (3,))
        big[..., 0] = y * 255.0
        big[..., 1:] = imresize(ycbcr[..., 1:], up.scale)
    if up.detail != 1:
        big[..., 0] = toward_bicubic(big[..., 0], imresize(ycbcr[..., 0], up.scale))
    big = ycbcr_to_rgb(big)
    return np.clip(big, 0, 255, out=big)


def enlarge_photo(photo: Photo, model: Callable[[np.ndarray], np.ndarray], scale: int, outscale: float | None = None,
                  alpha_upsampler: str = "bicubic") -> Photo:
    """``photo`` enlarged by ``model`` ((H, W, 3) float -> (H*scale, W*scale, 3) float, unrounded), then
    MATLAB bicubic to ``outscale`` (None: ``scale``); alpha by bicubic from the original (or the
    model), grey as the mean of the model's channels, 16-bit kept."""
    if alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise ValueError(f"alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, got {alpha_upsampler!r}")
    h, w = photo.size
    size = output_size(h, w, scale, outscale)
    rgb = photo.rgb if photo.alpha is None else fill_transparent(photo.rgb, photo.alpha)
    big = np.asarray(model(rgb), dtype=np.float64)
    assert big.shape == (h * scale, w * scale, 3), big.shape
    if photo.grey:
        big = big.mean(axis=2)  # resized on one plane, then replicated again
    big = np.clip(imresize(big, size=size), 0, 255)
    if photo.grey:
        big = np.repeat(big[..., None], 3, axis=2)
    alpha = None
    if photo.alpha is not None:
        if alpha_upsampler == "model":
            alpha = imresize(np.asarray(model(np.repeat(photo.alpha[..., None], 3, axis=2))).mean(axis=2), size=size)
        else:
            alpha = imresize(photo.alpha, size=size)  # one bicubic from the original, not two
        alpha = np.clip(alpha, 0, 255)
    return replace(photo, rgb=big, alpha=alpha, notes=list(photo.notes))


def enlarge_whole(up: Upscaler, photo: Photo, outscale: float | None = None, alpha_upsampler: str = "bicubic") -> Photo:
    """What ``sr.enlarge.enlarge(up, photo, ...)`` writes, computed on the whole image (read
    ``photo`` without ``compact``). Plain bicubic resizes once, straight to the output size."""
    if up.net is None:
        return enlarge_photo(photo, lambda rgb: rgb, 1, outscale or up.scale, alpha_upsampler)
    return enlarge_photo(photo, lambda rgb: enlarge_rgb(up, rgb), up.scale, outscale, alpha_upsampler)
