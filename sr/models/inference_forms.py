"""Inference forms of the models: layers oneDNN runs slowly, rewritten as equivalent fast ones.

The checkpoint's layout is what training saves and ``sr.export`` exports; these rewrites are
for eval-mode inference only (``sr.upscaler.Upscaler.load`` applies ``for_inference``).
"""

from __future__ import annotations

import torch
from torch import nn

from sr.models.fsrcnn import FSRCNN
from sr.models.srresnet import SRResNet


def subpixel_deconv(deconv: nn.ConvTranspose2d) -> nn.Sequential:
    """A stride-r transposed convolution as a convolution on the input grid with r*r times the
    output channels, then PixelShuffle(r): the same function (up to float rounding).

    Output pixel (r*i + s) of the transposed conv reads input pixel i - d through kernel tap
    r*d + s + padding, for the few d where that tap exists; those taps become one small
    kernel per sub-pixel position s. oneDNN has no fast transposed convolution on the CPU
    (FSRCNN x3's 9x9 deconv took 60% of its time); a plain 3x3 convolution is fast.
    Needs groups 1, dilation 1 and an output exactly r times the input.
    """
    r, k, pad = deconv.stride[0], deconv.kernel_size[0], deconv.padding[0]
    if (deconv.stride[1], deconv.kernel_size[1], deconv.padding[1]) != (r, k, pad) or deconv.groups != 1 \
            or deconv.dilation != (1, 1) or k - 2 * pad + deconv.output_padding[0] != r:
        raise ValueError(f"not a square, ungrouped, exactly x{r} transposed convolution: {deconv}")
    w = deconv.weight.detach().double()  # (in, out, k, k)
    c_in, c_out = w.shape[:2]
    taps = {s: [d for d in range(-k, k + 1) if 0 <= r * d + s + pad < k] for s in range(r)}
    reach = max(abs(d) for ds in taps.values() for d in ds)  # a symmetric kernel keeps receptive_radius right
    size = 2 * reach + 1
    kernel = torch.zeros(c_out * r * r, c_in, size, size, dtype=torch.float64)
    for sy in range(r):
        for sx in range(r):
            for dy in taps[sy]:
                for dx in taps[sx]:
                    # out channel c * r * r + sy * r + sx reads x[i - dy, j - dx]: kernel index reach - d
                    kernel[sy * r + sx :: r * r, :, reach - dy, reach - dx] = \
                        w[:, :, r * dy + sy + pad, r * dx + sx + pad].T
    conv = nn.Conv2d(c_in, c_out * r * r, size, padding=reach, bias=deconv.bias is not None)
    conv.weight.data.copy_(kernel)
    if deconv.bias is not None:
        conv.bias.data.copy_(deconv.bias.detach().repeat_interleave(r * r))
    return nn.Sequential(conv, nn.PixelShuffle(r)).to(deconv.weight.device)


def subpixel_tail(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """The k x k ``conv`` applied after PixelShuffle(r), as a convolution before it: (C*r*r)
    inputs, (C_out*r*r) outputs on the r-times smaller grid, to be followed by PixelShuffle(r).

    SRResNet's last 9x9 conv has 3 outputs at the full output size, a shape oneDNN runs at a
    fraction of its speed (a third of SRResNet x4's time); on the sub-pixel grid it has 12
    outputs over a quarter of the pixels, about three times faster, the same function.
    """
    k, half = conv.kernel_size[0], conv.kernel_size[0] // 2
    if conv.kernel_size[1] != k or conv.groups != 1 or conv.dilation != (1, 1) or conv.stride != (1, 1) \
            or conv.padding != (half, half):
        raise ValueError(f"not a square, same-size, ungrouped convolution: {conv}")
    w = conv.weight.detach().double()  # (out, in, k, k)
    c_out, c_in = w.shape[:2]
    span = (half + r - 1) // r  # sub-pixel grid offsets m in [-span, span]
    kernel = torch.zeros(c_out * r * r, c_in * r * r, 2 * span + 1, 2 * span + 1, dtype=torch.float64)
    for sy in range(r):
        for dy in range(-half, half + 1):
            ay, my = (sy + dy) % r, (sy + dy) // r  # output row r*i + sy + dy = r*(i + my) + ay
            for sx in range(r):
                for dx in range(-half, half + 1):
                    ax, mx = (sx + dx) % r, (sx + dx) // r
                    kernel[sy * r + sx :: r * r, ay * r + ax :: r * r, my + span, mx + span] += w[:, :, dy + half, dx + half]
    out = nn.Conv2d(c_in * r * r, c_out * r * r, 2 * span + 1, padding=span, bias=conv.bias is not None)
    out.weight.data.copy_(kernel)
    if conv.bias is not None:
        out.bias.data.copy_(conv.bias.detach().repeat_interleave(r * r))
    return out.to(conv.weight.device)


def for_inference(net: nn.Module) -> nn.Module:
    """Rewrite the layers oneDNN runs slowly into equivalent fast ones, in place (eval only):
    FSRCNN's transposed conv (``subpixel_deconv``) and SRResNet's last conv after its last
    PixelShuffle (``subpixel_tail``). Outputs agree with the checkpoint's network to ~1e-6;
    other models are returned as they are. Never for training or export (the checkpoint's
    layout is the one that is saved)."""
    if isinstance(net, FSRCNN) and isinstance(net.deconv, nn.ConvTranspose2d):
        net.deconv = subpixel_deconv(net.deconv)
    elif isinstance(net, SRResNet) and isinstance(net.tail, nn.Conv2d) and len(net.upsample) >= 3:
        *stages, shuffle, act = list(net.upsample)
        if isinstance(shuffle, nn.PixelShuffle) and isinstance(act, nn.LeakyReLU):
            # conv -> shuffle -> LeakyReLU -> tail  ==  conv -> LeakyReLU -> tail' -> shuffle
            # (an elementwise activation commutes with the shuffle; zero padding maps to zero padding)
            r = shuffle.upscale_factor
            net.upsample = nn.Sequential(*stages)
            net.tail = nn.Sequential(act, subpixel_tail(net.tail, r), nn.PixelShuffle(r))
    return net
