"""Enlarging a ``Photo`` with a model while keeping what it is: alpha, grey, 16-bit.

The model enlarges the colour (float, never rounded to 8 bits on the way, so 16-bit input
stays 16-bit); alpha is enlarged by bicubic (or the model), grey comes back as one plane.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from sr.errors import UserError
from sr.imresize import imresize
from sr.photo import ALPHA_UPSAMPLERS, Photo


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


def enlarge_photo(
    photo: Photo,
    enlarge_rgb: Callable[[np.ndarray], np.ndarray],
    scale: int,
    outscale: float | None = None,
    alpha_upsampler: str = "bicubic",
) -> Photo:
    """Enlarge a Photo with ``enlarge_rgb`` (the model), then to ``outscale`` by MATLAB bicubic.

    ``enlarge_rgb``: (H, W, 3) float in [0, 255] -> (H*scale, W*scale, 3) float in [0, 255].
    It must not round to 8 bits on the way, or 16-bit input loses its extra precision.
    ``outscale``: the final factor over the input (any value > 1, may be below ``scale``);
    the output is round(H*outscale) x round(W*outscale), halves rounded up. None: ``scale``.
    ``alpha_upsampler``: 'bicubic' (default) resizes the alpha plane straight to the output
    size. 'model' runs the model on the alpha plane (as three equal channels), which can keep
    hard cut-out edges sharper; but our models were trained on photographs, never on alpha
    mattes, so on soft mattes and thin edges they can ring or invent texture, and bicubic is
    the safe default (Real-ESRGAN's --alpha_upsampler offers the same two choices).
    Grey photos: the model sees three equal channels; its output is averaged back to one
    (any colour in it is the model's error, and the mean weighs the three errors equally).
    """
    if alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise ValueError(f"alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, got {alpha_upsampler!r}")
    if outscale is not None and not outscale > 1:
        raise UserError(f"outscale must be greater than 1, got {outscale}")
    h, w = photo.size
    if outscale is None:
        out_h, out_w = h * scale, w * scale
    else:
        out_h, out_w = math.floor(h * outscale + 0.5), math.floor(w * outscale + 0.5)

    def model(rgb: np.ndarray) -> np.ndarray:
        out = np.asarray(enlarge_rgb(rgb), dtype=np.float64)
        if out.shape != (h * scale, w * scale, 3):
            raise ValueError(f"enlarge_rgb gave {out.shape}, expected {(h * scale, w * scale, 3)}")
        return out

    rgb = photo.rgb if photo.alpha is None else fill_transparent(photo.rgb, photo.alpha)
    big = model(rgb)
    if photo.grey:
        big = big.mean(axis=2)  # (H*s, W*s); resized on one plane, then replicated again
    big = np.clip(imresize(big, size=(out_h, out_w)), 0, 255)
    if photo.grey:
        big = np.repeat(big[..., None], 3, axis=2)

    alpha = None
    if photo.alpha is not None:
        if alpha_upsampler == "model":
            alpha = imresize(model(np.repeat(photo.alpha[..., None], 3, axis=2)).mean(axis=2), size=(out_h, out_w))
        else:
            alpha = imresize(photo.alpha, size=(out_h, out_w))  # one bicubic from the original, not two
        alpha = np.clip(alpha, 0, 255)
    return replace(photo, rgb=big, alpha=alpha, notes=list(photo.notes))


# ----------------------------------------------------------------------------- writing
