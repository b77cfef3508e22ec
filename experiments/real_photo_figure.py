"""The README's real-photo crop: a photo shrunk x4 and saved as a JPEG, then enlarged.

    python -m experiments.real_photo_figure --weights real_srresnet_x4 real_fsrcnn_x4
    python -m experiments.real_photo_figure --image BSDS100/42049.png --degrade webp:50 \
        --weights srresnet_x4 real_srresnet_x4 --labels "before: the default picked" "now: the default picks"

The photo (BSDS100 by default, a test image: it only illustrates, it chooses nothing) is
degraded as eval.py --jpeg does it (MATLAB bicubic x4, then a Pillow JPEG save at --jpeg), or
as eval.py --degrade KIND does, and enlarged by bicubic and the models given (srresnet_x4 first
unless --labels names them all); the same crop of each, with the original beside them, goes to
--output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sr.data.field import check_kind
from sr.data.images import save_image
from sr.data.sets import data_root
from sr.figures import side_by_side
from sr.enlarge import enlarge
from sr.photo import Photo
from sr.upscaler import Upscaler
from sr.protocol import degrade, ground_truth

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", nargs="+", default=["real_srresnet_x4"],
                   help="the real-photo models (paths or shipped names; default real_srresnet_x4)")
    p.add_argument("--image", default="BSDS100/69015.png", help="a photo under the data root (or a path)")
    p.add_argument("--jpeg", type=int, default=75, help="JPEG quality of the shrunk photo (default 75)")
    p.add_argument("--degrade", type=check_kind, help="a field kind instead of --jpeg: webp:50, resaved, ...")
    p.add_argument("--labels", nargs="+", help="a caption per --weights (then srresnet_x4 is not added)")
    p.add_argument("--crop", type=int, nargs=4, default=(60, 120, 220, 280), metavar=("TOP", "LEFT", "BOTTOM", "RIGHT"),
                   help="the crop shown, in output pixels")
    p.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement of the crops, so pixels stay visible")
    p.add_argument("--output", type=Path, default=ROOT / "experiments" / "figures" / "real_photo_x4.png")
    args = p.parse_args()
    path = Path(args.image) if Path(args.image).is_file() else data_root() / args.image
    hr = ground_truth(path, 4)
    lr = degrade(hr, 4, jpeg=args.degrade or args.jpeg).astype(np.float64)
    what = args.degrade or f"JPEG q{args.jpeg}"
    top, left, bottom, right = args.crop

    def cut(img: np.ndarray) -> np.ndarray:
        part = img[top:bottom, left:right]
        return np.repeat(np.repeat(part, args.zoom, axis=0), args.zoom, axis=1)

    panels = []
    upscalers = [("bicubic", Upscaler.bicubic(4))]
    if args.labels:
        upscalers += [(f"{label}\n{Path(w).stem}", Upscaler.load(w, amp=False)) for label, w in zip(args.labels, args.weights)]
    else:
        upscalers += [(name, Upscaler.load(name, amp=False)) for name in ("srresnet_x4", *args.weights)]
        upscalers = [(Path(name).stem, up) for name, up in upscalers]
    for name, upscaler in upscalers:
        out = np.asarray(enlarge(upscaler, Photo(rgb=lr))[0])
        panels.append((cut(out), f"{name}\n{what} LR, x4"))
    panels.append((cut(hr), "original"))
    save_image(args.output, side_by_side(panels))
    print(f"wrote {args.output} ({path.name}, crop {args.crop})")


if __name__ == "__main__":
    main()
