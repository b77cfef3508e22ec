"""PSNR and SSIM under the evaluation protocol of SR papers.

Inputs are (N, C, H, W) tensors in [0, 1]; everything is computed in float64, per image.
``y_channel=True`` turns RGB (C = 3) into the BT.601 Y channel first; a one-channel input
is taken to be Y already. ``crop_border`` pixels are dropped on every side (the scale).
Identical images have infinite PSNR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sr.color import rgb_to_y_tensor

SSIM_WINDOW = 11  # MATLAB ssim_index's Gaussian window, valid region only


def smallest_scored_side(scale: int) -> int:
    """The smallest HR side that can be scored at ``scale``: the protocol crops ``scale``
    pixels from every side, and SSIM's window must fit in what is left."""
    return 2 * scale + SSIM_WINDOW


def _prepare(img: torch.Tensor, crop_border: int, y_channel: bool) -> torch.Tensor:
    if img.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(img.shape)}")
    img = img.to(torch.float64)
    if y_channel and img.shape[1] == 3:
        img = rgb_to_y_tensor(img)
    if crop_border > 0:
        img = img[..., crop_border:-crop_border, crop_border:-crop_border]
    return img


def psnr(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = True) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    pred, target = _prepare(pred, crop_border, y_channel), _prepare(target, crop_border, y_channel)
    mse = (pred - target).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)  # mse == 0 gives +inf


def _gaussian_1d(size: int = SSIM_WINDOW, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Filter (B, 1, H, W) with the 2-D Gaussian outer(g, g), valid region only.

    Done as two 1-D passes: float64 convolution on the CPU has no fast kernel, and a
    separable filter touches 2*11 instead of 121 values per pixel.
    """
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    return F.conv2d(x, g.view(1, 1, 1, -1))


def ssim(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = True) -> torch.Tensor:
    """Per-image SSIM, shape (N,): MATLAB's ``ssim_index`` (Gaussian 11x11, sigma 1.5,
    valid region only), averaged over channels for colour input."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    x, y = _prepare(pred, crop_border, y_channel), _prepare(target, crop_border, y_channel)
    c1, c2 = 0.01**2, 0.03**2  # (K * L)^2 with L = 1 for images in [0, 1]
    n, c, h, w = x.shape
    g = _gaussian_1d().to(x.device)
    if h < g.numel() or w < g.numel():
        raise ValueError(f"image of {h}x{w} after cropping is smaller than the 11x11 SSIM window")
    # Filter every channel of both images and their products in one grouped convolution.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1).reshape(n * 5 * c, 1, h, w)
    mu_x, mu_y, xx, yy, xy = _gaussian_filter_valid(stack, g).reshape(n, 5, c, h - 10, w - 10).unbind(1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))


HARM_BLOCK = 32  # HR pixels a side: four 8x8 JPEG blocks of the LR at x4, the size of the cell patterns seen
HARM_DB = 0.5  # a block counts as harmed when the model is this much worse than the baseline there
HARM_FLOOR = 2.0 / 255  # RMS error floor: flat blocks, where both are near perfect, never count


def harmed_share(pred: torch.Tensor, base: torch.Tensor, target: torch.Tensor, crop_border: int = 0) -> float:
    """The share of ``HARM_BLOCK``-pixel blocks (on Y) where ``pred`` is more than ``HARM_DB`` dB
    worse than ``base`` (bicubic, say) against ``target``; RMS errors are floored at ``HARM_FLOOR``.

    (1, C, H, W) tensors in [0, 1]. PSNR over a whole image hides a model that draws a pattern
    bicubic does not in a few textured places while gaining everywhere else; this counts them.
    """
    pred, base, target = (_prepare(t, crop_border, True) for t in (pred, base, target))
    h, w = target.shape[-2] // HARM_BLOCK * HARM_BLOCK, target.shape[-1] // HARM_BLOCK * HARM_BLOCK
    if not h or not w:
        return 0.0

    def block_rms(img: torch.Tensor) -> torch.Tensor:
        err = (img - target)[..., :h, :w].pow(2)
        return F.avg_pool2d(err, HARM_BLOCK).sqrt().clamp(min=HARM_FLOOR)

    worse_db = 20 * torch.log10(block_rms(pred) / block_rms(base))
    return float((worse_db > HARM_DB).double().mean())
