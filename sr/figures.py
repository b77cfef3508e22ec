"""Side-by-side comparison pictures with a caption over each panel (Pillow only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def side_by_side(panels: list[tuple[np.ndarray, str]], gap: int = 8, font_size: int = 16) -> np.ndarray:
    """Place (H, W, 3) uint8 images left to right on white, each under its caption.

    Panels of different heights are top-aligned; the caption band fits the longest line.
    """
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = max(caption.count("\n") + 1 for _, caption in panels)
    band = lines * (font_size + 4) + 8
    width = sum(img.shape[1] for img, _ in panels) + gap * (len(panels) + 1)
    height = max(img.shape[0] for img, _ in panels) + band + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for img, caption in panels:
        text_w = probe.multiline_textbbox((0, 0), caption, font=font)[2]
        draw.multiline_text((x + max(0, (img.shape[1] - text_w) // 2), 4), caption, fill=(0, 0, 0), font=font, align="center")
        canvas.paste(Image.fromarray(img), (x, band))
        x += img.shape[1] + gap
    return np.asarray(canvas)
