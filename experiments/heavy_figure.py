"""Crops of a heavily compressed foliage photo, for the eye: bicubic | the photo model alone | what the
enlarger picks for the file | the Real-ESRGAN peer x4plus (when its file is there) | the original.

    SR_DATA=path/to/datasets python -m experiments.heavy_figure --kinds jpeg:30 jpeg:50+webp:70

The photo (BSDS100 148026, a test image: it only illustrates and chooses nothing) is saved as each
field kind and read back; each model enlarges it in fp32 through the protocol's path.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from sr.data.field import check_kind, save_field_lr
from sr.data.images import save_image
from sr.data.sets import data_root
from sr.figures import side_by_side
from sr.protocol import ground_truth
from sr.upscaler import Upscaler
from sr.weights import PHOTO_WEIGHTS, default_weights

ROOT = Path(__file__).resolve().parent.parent
PEER = "RealESRGAN_x4plus.fp16.safetensors"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", nargs="+", type=check_kind, default=["jpeg:30", "jpeg:50+webp:70"])
    p.add_argument("--image", default="BSDS100/148026.png")
    p.add_argument("--crop", type=int, nargs=4, default=(16, 40, 144, 232), metavar=("TOP", "LEFT", "BOTTOM", "RIGHT"))
    p.add_argument("--peers", type=Path, help="folder of the peer models (default: peers/ beside the data root)")
    args = p.parse_args(argv)
    hr = ground_truth(data_root() / args.image, 4)
    peer = (args.peers or data_root().parent / "peers") / PEER
    top, left, bottom, right = args.crop
    work = Path(tempfile.mkdtemp(prefix="heavy_figure_"))
    for kind in args.kinds:
        tag = kind.replace(":", "").replace("+", "_")
        saved = save_field_lr(hr, 4, kind, work / tag)
        lr = np.array(Image.open(saved).convert("RGB"))
        choice = default_weights(saved)
        models = [("bicubic", Upscaler.bicubic(4)), (f"{PHOTO_WEIGHTS} alone", Upscaler.load(PHOTO_WEIGHTS, amp=False)),
                  (f"the default:\n{choice.label}", Upscaler.chosen(choice, amp=False))]
        if peer.is_file():
            models.append(("peer: Real-ESRGAN x4plus", Upscaler.load(peer, amp=False)))
        panels = [(up.score(lr, hr).image, name) for name, up in models] + [(hr, "original")]
        panels = [(np.repeat(np.repeat(img[top:bottom, left:right], 2, axis=0), 2, axis=1), name) for img, name in panels]
        out = ROOT / "experiments" / "figures" / f"heavy_{tag}_x4.png"
        save_image(out, side_by_side(panels, font_size=14))
        print(f"wrote {out.relative_to(ROOT)} ({kind}: {choice.reason})")


if __name__ == "__main__":
    main()
