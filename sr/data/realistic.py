"""Random degradations for training on real photos, applied to clean HR batches on the fly.

Each sample of a batch is, with probability ``clean_prob``, degraded by the evaluation
protocol (MATLAB bicubic, ``sr.data.degradation.downscale``); otherwise it goes through a
first-order version of Real-ESRGAN's model:

    blur (isotropic or rotated anisotropic Gaussian) -> downscale (bicubic, bilinear or area)
    -> Gaussian noise (colour or grey) -> round to uint8 -> JPEG (Pillow) at a random quality

every step but the downscale with its own probability. All randomness comes from the
caller's ``torch.Generator``, drawn in a fixed amount per batch whatever the settings, so
the same seed on the same batch gives bit-identical LR. Values stay in [0, 255] float32
between the steps.

``DegradedPatches`` puts this in the training data path: it wraps a clean lr-hr RGB
``PatchDataset`` and degrades every batch it is asked for, seeded by the batch itself.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sr.data.degradation import downscale
from sr.data.degradation_settings import SIGMA_SCALE, DegradationSettings
from sr.data.field import shifted_compress

def gaussian_kernels(sigma_x: torch.Tensor, sigma_y: torch.Tensor, angle: torch.Tensor, size: int) -> torch.Tensor:
    """(N,) stds along the kernel's own axes and rotations in radians -> (N, size, size) kernels, each summing to 1.

    ``sigma_x`` lies along the image's columns (x) when ``angle`` is 0; a positive angle turns it
    counter-clockwise as displayed (y grows downwards). Written by hand because torchvision's
    ``gaussian_blur`` takes only axis-aligned sigmas.
    """
    r = size // 2
    coords = torch.arange(-r, r + 1, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (size, size) each; y down, x right
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    # (u, v): coordinates along the kernel's axes; u runs along (cos, -sin) in (x, y), which is
    # the x axis turned counter-clockwise on screen.
    u = cos * x - sin * y
    v = sin * x + cos * y
    sx, sy = sigma_x.double()[:, None, None], sigma_y.double()[:, None, None]
    k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))  # peak 1 at the centre
    # Far tails of narrow kernels are float32 denormals, which make conv2d ~8x slower on x86.
    k = k.masked_fill(k < 1e-12, 0.0)
    return k / k.sum(dim=(1, 2), keepdim=True)


def gaussian_kernels_1d(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """(N,) stds -> (N, size) 1-D Gaussians summing to 1; the outer product of one with itself
    is ``gaussian_kernels(sigma, sigma, 0, size)`` up to the zeroed tails."""
    r = size // 2
    coords = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (coords / sigma.double()[:, None]) ** 2)
    k = k.masked_fill(k < 1e-12, 0.0)  # no float32 denormals, as in gaussian_kernels
    return k / k.sum(dim=1, keepdim=True)


def _blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) float by (n, k, k) per-sample kernels, reflected borders, one grouped conv."""
    n, c, h, w = x.shape
    p = kernels.shape[-1] // 2
    padded = F.pad(x, (p, p, p, p), mode="reflect").reshape(1, n * c, h + 2 * p, w + 2 * p)
    # Sample i's kernel is used for its C channels. Gaussians are point-symmetric, so conv2d's
    # correlation is the convolution.
    weight = kernels.float().repeat_interleave(c, dim=0)[:, None]  # (n*C, 1, k, k)
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def _blur_separable(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) float by (n, k) per-sample 1-D kernels, along x then y, reflected borders:
    an isotropic blur in 2k instead of k*k multiplies per pixel."""
    n, c, h, w = x.shape
    p = kernels.shape[-1] // 2
    # channels_last: oneDNN's grouped 1-D convolutions run several times faster in it, same bits.
    cl = torch.channels_last
    padded = F.pad(x, (p, p, p, p), mode="reflect").reshape(1, n * c, h + 2 * p, w + 2 * p).contiguous(memory_format=cl)
    weight = kernels.float().repeat_interleave(c, dim=0)  # (n*C, k)
    rows = F.conv2d(padded, weight[:, None, None, :].contiguous(memory_format=cl), groups=n * c)  # (1, n*C, H + 2p, W)
    cols = F.conv2d(rows, weight[:, None, :, None].contiguous(memory_format=cl), groups=n * c)  # (1, n*C, H, W)
    return cols.reshape(n, c, h, w)


def jpeg_degrade(rgb_uint8_hwc: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> decoded after Pillow's JPEG at ``quality`` (1-100), its other defaults.

    Those include 4:2:0 chroma subsampling at every quality, so even quality 100 loses some
    colour detail (~36 dB on a noisy test image). Pillow rather than torchvision.io, whose
    JPEG functions are deprecated since 0.29; both wrap libjpeg-turbo and agree bit for bit here.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(rgb_uint8_hwc).save(buf, format="JPEG", quality=quality)
    # Decoded straight by libjpeg: Image.open would parse the markers in Python first, which
    # takes longer than decoding a 25 px patch. Same decoder, same settings, same pixels.
    h, w = rgb_uint8_hwc.shape[:2]
    return np.array(Image.frombytes("RGB", (w, h), buf.getvalue(), "jpeg", "RGB", ""))  # a writable copy


# Columns of the per-sample uniform draws, one row per sample; every column is drawn for every
# sample whatever the settings, so changing one probability never shifts the other draws.
_CLEAN, _BLUR, _ANISO, _SIGMA_X, _SIGMA_Y, _ANGLE, _MODE, _NOISE, _GREY, _NOISE_SIGMA, _JPEG, _QUALITY = range(12)
# The field steps' draws, made after all of the above, so settings without them give the LR they always gave.
(_WEBP, _SHIFT, _DY, _DX, _RESIZE, _RATIO, _SECOND, _SECOND_BLUR, _SECOND_BLUR_SIGMA, _SECOND_SIGMA, _SECOND_Q,
 _SECOND_WEBP, _SECOND_DY, _SECOND_DX) = range(14)


def _compress(lr: torch.Tensor, webp: bool, quality: int, dy: int, dx: int) -> torch.Tensor:
    """(3, h, w) uint8 through a JPEG (or WebP) save and decode, its block grid moved (dy, dx)."""
    rgb = lr.permute(1, 2, 0).numpy()
    if webp or dy or dx:
        out = shifted_compress(rgb, "webp" if webp else "jpeg", quality, dy, dx)
    else:
        out = jpeg_degrade(rgb, quality)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)


def _quality(u: torch.Tensor, bounds: tuple[int, int]) -> torch.Tensor:
    lo, hi = bounds
    return (lo + (u * (hi - lo + 1)).long()).clamp(max=hi)


def degrade_batch(
    hr: torch.Tensor,
    scale: int,
    settings: DegradationSettings,
    generator: torch.Generator,
    clean_lr: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB HR, H and W multiples of ``scale`` -> (N, 3, H/scale, W/scale) uint8 LR.

    Parameters are drawn per sample from ``generator`` (a CPU generator); the same generator
    state, batch and settings give the same output bit for bit (on the same torch build, at any
    thread count). The draws are made per batch, so a sample's degradation depends on its batch:
    seed a generator per batch (``DegradedPatches`` does), and the data do not depend on the
    number of loader workers. ``clean_lr``, the protocol's LR of the batch when it is at hand
    (a prepare_h5.py file stores it), is what clean samples get instead of computing it.
    """
    if hr.dtype != torch.uint8 or hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"hr must be a (N, 3, H, W) uint8 tensor, got {tuple(hr.shape)} {hr.dtype}")
    n, _, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {scale}")
    lh, lw = h // scale, w // scale
    if clean_lr is not None and (clean_lr.dtype != torch.uint8 or clean_lr.shape != (n, 3, lh, lw)):
        raise ValueError(f"clean_lr must be a {(n, 3, lh, lw)} uint8 tensor, got {tuple(clean_lr.shape)} {clean_lr.dtype}")
    s = settings
    u = torch.rand(n, 12, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, 3, lh, lw, generator=generator)  # unit std; grey samples use channel 0
    v = torch.rand(n, 14, generator=generator, dtype=torch.float64)  # the field steps (_WEBP ...)
    second_noise = torch.randn(n, 3, lh, lw, generator=generator)
    swap = torch.rand(n, generator=generator, dtype=torch.float64)  # drawn last: earlier settings keep their LR

    clean = u[:, _CLEAN] < s.clean_prob
    out = torch.empty(n, 3, lh, lw, dtype=torch.uint8)
    for i in torch.nonzero(clean).flatten().tolist():
        if clean_lr is not None:
            out[i] = clean_lr[i]
        else:  # the protocol's LR of the patch (~1 ms per 96 px sample)
            out[i] = torch.from_numpy(downscale(hr[i].permute(1, 2, 0).numpy(), scale)).permute(2, 0, 1)
    rest = torch.nonzero(~clean).flatten()
    if len(rest) == 0:
        return out
    # index_select rather than hr[rest]: advanced indexing of uint8 is ~8x slower on the CPU.
    x = hr.index_select(0, rest).float()  # (m, 3, H, W) in [0, 255]
    u, v, swap = u[rest], v[rest], swap[rest]
    quality = _quality(u[:, _QUALITY], s.jpeg_quality)
    webp = v[:, _WEBP] < s.webp_share
    shifted = v[:, _SHIFT] < s.grid_shift_prob
    dy, dx = ((v[:, c] * 8).long().clamp(max=7) * shifted for c in (_DY, _DX))

    # Blur, at HR. One kernel size for the batch, covering 3 sigma of the widest possible kernel.
    lo, hi = (v * scale / SIGMA_SCALE for v in s.blur_sigma)
    blur = torch.nonzero(u[:, _BLUR] < s.blur_prob).flatten()
    if len(blur):
        ub = u[blur]
        sigma_x = lo + (hi - lo) * ub[:, _SIGMA_X]
        aniso = ub[:, _ANISO] < s.aniso_prob
        sigma_y = torch.where(aniso, lo + (hi - lo) * ub[:, _SIGMA_Y], sigma_x)
        angle = torch.where(aniso, math.pi * ub[:, _ANGLE], torch.zeros_like(sigma_x))
        radius = min(math.ceil(3 * hi), h - 1, w - 1)  # reflect padding needs radius < size
        size = 2 * radius + 1
        # Isotropic kernels are separable: two 1-D passes. Rotated ones take the full 2-D kernel.
        iso, turned = blur[~aniso], blur[aniso]
        if len(iso):
            x[iso] = _blur_separable(x.index_select(0, iso), gaussian_kernels_1d(sigma_x[~aniso], size))
        if len(turned):
            x[turned] = _blur(x.index_select(0, turned), gaussian_kernels(sigma_x[aniso], sigma_y[aniso], angle[aniso], size))

    # Downscale, one interpolate call per mode; antialias where torch has it (area averages anyway).
    lr = torch.empty(len(rest), 3, lh, lw)
    mode_index = (u[:, _MODE] * len(s.resize_modes)).long().clamp(max=len(s.resize_modes) - 1)
    for k, mode in enumerate(s.resize_modes):
        pick = torch.nonzero(mode_index == k).flatten()
        if len(pick):
            kw = {} if mode == "area" else {"antialias": True, "align_corners": False}
            lr[pick] = F.interpolate(x.index_select(0, pick), size=(lh, lw), mode=mode, **kw)

    # Resized after compression: these samples are compressed at 1.25-2.5x the LR size instead,
    # then shrunk to it, so their blocks are smaller than 8 LR px and off the grid.
    compressed = u[:, _JPEG] < s.jpeg_prob
    resized = v[:, _RESIZE] < s.resize_after_prob
    r_lo, r_hi = s.resize_after_ratio
    for j in torch.nonzero(resized).flatten().tolist():
        ratio = r_lo + (r_hi - r_lo) * float(v[j, _RATIO])
        size = (min(h, round(lh * ratio)), min(w, round(lw * ratio)))
        mid = F.interpolate(x[j:j + 1], size=size, mode="bicubic", antialias=True, align_corners=False)
        mid = _compress(mid[0].round().clamp(0, 255).to(torch.uint8), bool(webp[j]), int(quality[j]), int(dy[j]), int(dx[j]))
        lr[j] = F.interpolate(mid[None].float(), size=(lh, lw), mode="bicubic", antialias=True, align_corners=False)[0]

    # Noise, at LR: Gaussian, the same in all channels for grey samples.
    noise = noise.index_select(0, rest)
    grey = u[:, _GREY] < s.grey_noise_prob
    noise[grey] = noise[grey][:, :1].expand(-1, 3, -1, -1)
    sigma = s.noise_sigma[0] + (s.noise_sigma[1] - s.noise_sigma[0]) * u[:, _NOISE_SIGMA]
    sigma = torch.where(u[:, _NOISE] < s.noise_prob, sigma, torch.zeros_like(sigma)).float()
    lr = lr + sigma[:, None, None, None] * noise

    # Quantise as a saved image would be, then JPEG (or WebP), unless compressed before the resize.
    lr = lr.round_().clamp_(0, 255).to(torch.uint8)
    for j in torch.nonzero(compressed & ~resized).flatten().tolist():
        lr[j] = _compress(lr[j], bool(webp[j]), int(quality[j]), int(dy[j]), int(dx[j]))

    # The second round (Real-ESRGAN's second order, at the LR size): a light blur for half of
    # them, noise, and a second save, with a grid of its own.
    second = torch.nonzero(v[:, _SECOND] < s.second_prob).flatten()
    if len(second):
        y = lr.index_select(0, second).float()
        vs = v[second]
        blurred = torch.nonzero(vs[:, _SECOND_BLUR] < 0.5).flatten()
        if len(blurred):
            lo2, hi2 = s.second_blur_sigma
            sig = lo2 + (hi2 - lo2) * vs[blurred, _SECOND_BLUR_SIGMA]
            radius = min(math.ceil(3 * hi2), lh - 1, lw - 1)
            y[blurred] = _blur_separable(y.index_select(0, blurred), gaussian_kernels_1d(sig, 2 * max(radius, 1) + 1))
        n_lo, n_hi = s.second_noise_sigma
        sig2 = (n_lo + (n_hi - n_lo) * vs[:, _SECOND_SIGMA]).float()
        y = (y + sig2[:, None, None, None] * second_noise.index_select(0, rest).index_select(0, second)).round_().clamp_(0, 255)
        y = y.to(torch.uint8)
        q2 = _quality(vs[:, _SECOND_Q], s.second_quality)
        for k, j in enumerate(second.tolist()):
            dy2, dx2 = (int(min(7, vs[k, c] * 8)) for c in (_SECOND_DY, _SECOND_DX))
            second_webp = bool(vs[k, _SECOND_WEBP] < s.webp_share)
            if swap[j] < s.second_swap_prob:  # the other format than the first save: a JPEG re-saved as WebP
                second_webp = not bool(webp[j])
            lr[j] = _compress(y[k], second_webp, int(q2[k]), dy2, dx2)
    out[rest] = lr
    return out
