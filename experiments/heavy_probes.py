"""Can post-processing remove the cells a photo model draws on heavily compressed files? Three probes on validation.

    python -m experiments.heavy_probes                       # all three, the default model: experiments/heavy/probes_real_srresnet_x4.json
    python -m experiments.heavy_probes --probes clamp --model real_fsrcnn_x4

Each of the 10 BSDS200-val photos (held out of every photo model's training) is saved as a field kind
and read back, as ``experiments.detail_rule`` does. Test sets are not read.

* ``deblock``  quantisation-constrained smoothing (POCS) of a JPEG's decoded luma: a Gaussian blur,
               then every 8x8 DCT coefficient put back inside the interval its quantised value stands
               for, repeated. Scored as the PSNR of the LR's luma against the clean LR's, before the
               model: if the LR does not get closer to the clean LR, the model has nothing better to work on.
* ``clamp``    the model's output, run as the enlarger runs the file, clipped to the range of the LR's
               3x3 neighbourhood (plus a margin): the anti-ringing clamp video scalers use against
               dark and bright rims. Gain over bicubic / harmed share, as the field benchmark scores them.
* ``local``    the least-squares share of the model's detail over bicubic (D in bicubic + D x (model -
               bicubic)) for each pixel position relative to the file's 8x8 grid (HR px mod 32), and for
               each count of AC coefficients the LR block kept: if the model's detail were worse at block
               edges or in blocks the JPEG flattened, a local pull would gain there.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from experiments.detail_rule import SCALE, VAL, tensor
from sr.color import rgb_to_y
from sr.data.degradation import mod_crop
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, field_degrade, save_field_lr
from sr.data.h5 import load_eval_set
from sr.data.realistic import gaussian_kernels_1d
from sr.imresize import imresize
from sr.jpeg_quality import _dct_matrix
from sr.metrics import harmed_share, psnr
from sr.protocol import bicubic_score
from sr.upscaler import Upscaler
from sr.weights import Choice, named_choice

JPEG_KINDS = ("jpeg:30", "jpeg:40")  # single JPEG saves: the file's table and grid are the blocks'
POCS = ((5, 0.6), (10, 1.0), (20, 1.0))  # (iterations, blur sigma in LR px)
MARGINS = (0, 8, 16)  # levels the clamp allows past the neighbourhood's range
AC_BINS = ((0, 0), (1, 1), (2, 3), (4, 7), (8, 63))
DCT = torch.from_numpy(_dct_matrix())


def val_files(kind: str, work: Path):
    """(name, HR, saved file) for each validation photo saved as ``kind``."""
    _, images = load_eval_set(VAL)
    for im in images:
        hr = mod_crop(im.hr, SCALE)
        yield im.name, hr, save_field_lr(hr, SCALE, kind, work / f"{im.name}_{kind.replace(':', '').replace('+', '_')}")


def jpeg_luma(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A JPEG's decoded luma (the decoder's own Y, full range, before any colour conversion) and its table."""
    with Image.open(path) as img:
        table = np.array(img.quantization[0], dtype=np.float64).reshape(8, 8)
        img.draft("YCbCr", img.size)  # same size: only skips the conversion to RGB
        return np.array(img)[..., 0].astype(np.float64), table


def blocks(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape
    return x.reshape(h // 8, 8, w // 8, 8).permute(0, 2, 1, 3)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, round(2.5 * sigma))
    k = gaussian_kernels_1d(torch.tensor([sigma], dtype=torch.float64), 2 * r + 1).view(1, 1, 1, -1)
    x = F.conv2d(F.pad(x[None, None], (r, r, 0, 0), mode="replicate"), k)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3))[0, 0]


def constrained_smoothing(luma: np.ndarray, table: np.ndarray, iterations: int, sigma: float) -> np.ndarray:
    h, w = luma.shape
    x = F.pad(torch.from_numpy(luma)[None, None], (0, -w % 8, 0, -h % 8), mode="replicate")[0, 0]
    q = torch.from_numpy(table)
    k = torch.round(DCT @ blocks(x - 128) @ DCT.T / q)
    low, high = (k - 0.5) * q, (k + 0.5) * q
    for _ in range(iterations):
        c = DCT @ blocks(gaussian_blur(x, sigma) - 128) @ DCT.T
        c = torch.minimum(torch.maximum(c, low), high)
        x = ((DCT.T @ c @ DCT).permute(0, 2, 1, 3).reshape(x.shape) + 128).clamp(0, 255)
    return x[:h, :w].numpy()


def probe_deblock(work: Path) -> dict:
    out = {}
    for kind in JPEG_KINDS:
        rows = []
        for _, hr, saved in val_files(kind, work):
            clean = field_degrade(hr, SCALE, "clean").astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # JPEG's Y
            luma, table = jpeg_luma(saved)
            mse = lambda y: float(np.mean((y - clean) ** 2))  # noqa: E731
            rows.append([10 * np.log10(255**2 / mse(luma))]
                        + [10 * np.log10(255**2 / mse(constrained_smoothing(luma, table, n, s))) for n, s in POCS])
        m = np.mean(rows, axis=0)
        out[kind] = {"as decoded": m[0], **{f"{n} iterations, sigma {s:g}": v for (n, s), v in zip(POCS, m[1:])}}
        print(f"deblock {kind:10s} LR luma PSNR against the clean LR: as decoded {m[0]:.3f}  "
              + "  ".join(f"{n}x sigma {s:g}: {v:.3f}" for (n, s), v in zip(POCS, m[1:])), flush=True)
    return out


def upscaler_for(choice: Choice, upscalers: dict[str, Upscaler]) -> Upscaler:
    """The fp32 upscaler a choice runs, built once per label."""
    if choice.label not in upscalers:
        upscalers[choice.label] = Upscaler.chosen(choice, amp=False)
    return upscalers[choice.label]


def run_as_the_enlarger(model: str, saved: Path, hr: np.ndarray, upscalers: dict, detail: float | None = None):
    lr = np.array(Image.open(saved).convert("RGB"))
    return lr, upscaler_for(named_choice(model, saved, detail=detail), upscalers).score(lr, hr).image


def gain_and_harm(image: np.ndarray, bicubic: np.ndarray, truth: np.ndarray) -> list[float]:
    """[Y PSNR gain over ``bicubic`` in dB, share of 32x32 blocks harmed], as the field benchmark scores them."""
    base = psnr(tensor(bicubic), tensor(truth), crop_border=SCALE).item()
    return [psnr(tensor(image), tensor(truth), crop_border=SCALE).item() - base,
            harmed_share(tensor(image), tensor(bicubic), tensor(truth), crop_border=SCALE)]


def local_range(lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per HR pixel, the lowest and highest value of its LR pixel's 3x3 neighbourhood, per channel."""
    x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float64))
    high, low = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    return tuple(F.interpolate(t, scale_factor=SCALE, mode="nearest")[0].numpy().transpose(1, 2, 0) for t in (low, high))


def probe_clamp(model: str, work: Path) -> dict:
    out, upscalers = {}, {}
    for kind in (*FIELD_KINDS, *HEAVY_KINDS):
        rows = []
        for _, hr, saved in val_files(kind, work):
            lr, pred = run_as_the_enlarger(model, saved, hr, upscalers)
            bicubic = bicubic_score(lr, hr, SCALE).image
            truth = hr[:pred.shape[0], :pred.shape[1]]
            low, high = local_range(lr)
            candidates = [pred] + [np.clip(pred, low - m, high + m).astype(np.uint8) for m in MARGINS]
            rows.append([v for c in candidates for v in gain_and_harm(c, bicubic, truth)])
        m = np.mean(rows, axis=0)
        names = ["as the enlarger runs it"] + [f"clamped, margin {mm}" for mm in MARGINS]
        out[kind] = {n: [m[2 * i], m[2 * i + 1]] for i, n in enumerate(names)}
        print(f"clamp {model} {kind:16s} " + "  ".join(f"{n}: {g:+.3f}/{h:.1%}" for n, (g, h) in out[kind].items()), flush=True)
    return out


def ac_counts(path: Path) -> np.ndarray:
    """(H/8, W/8): how many AC coefficients each 8x8 luma block of a JPEG kept."""
    luma, table = jpeg_luma(path)
    h, w = luma.shape[0] // 8 * 8, luma.shape[1] // 8 * 8
    c = DCT @ blocks(torch.from_numpy(luma[:h, :w]) - 128) @ DCT.T
    kept = torch.round(c / torch.from_numpy(table)) != 0
    kept[..., 0, 0] = False
    return kept.sum(dim=(2, 3)).numpy()


def probe_local(model: str, work: Path) -> dict:
    out, upscalers = {}, {}
    for kind in JPEG_KINDS:
        by_position = np.zeros((2, 32, 32))  # sums of detail x error-to-bicubic, detail^2
        by_count = np.zeros((2, len(AC_BINS)))
        for _, hr, saved in val_files(kind, work):
            lr, pred = run_as_the_enlarger(model, saved, hr, upscalers, detail=1.0)
            bicubic = rgb_to_y(imresize(lr.astype(np.float64), float(SCALE)))
            detail = rgb_to_y(pred.astype(np.float64)) - bicubic
            wanted = rgb_to_y(hr[:pred.shape[0], :pred.shape[1]].astype(np.float64)) - bicubic
            inside = np.zeros(detail.shape, dtype=bool)
            inside[SCALE:-SCALE, SCALE:-SCALE] = True
            yy, xx = np.nonzero(inside)
            np.add.at(by_position[0], (yy % 32, xx % 32), (detail * wanted)[inside])
            np.add.at(by_position[1], (yy % 32, xx % 32), (detail**2)[inside])
            counts = np.kron(ac_counts(saved), np.ones((8 * SCALE, 8 * SCALE), dtype=int))
            h, w = counts.shape
            for i, (lo, hi) in enumerate(AC_BINS):
                m = inside[:h, :w] & (counts >= lo) & (counts <= hi)
                by_count[:, i] += [(detail[:h, :w] * wanted[:h, :w])[m].sum(), (detail[:h, :w] ** 2)[m].sum()]
        rows, cols = (by_position[0].sum(axis=a) / by_position[1].sum(axis=a) for a in (1, 0))
        out[kind] = {"overall": by_position[0].sum() / by_position[1].sum(),
                     "by row mod 32": rows.round(3).tolist(), "by column mod 32": cols.round(3).tolist(),
                     "by AC coefficients kept": {f"{lo}-{hi}": v for (lo, hi), v in zip(AC_BINS, by_count[0] / by_count[1])}}
        print(f"local {model} {kind}: best D overall {out[kind]['overall']:.2f}; by row mod 32 "
              f"{rows.min():.2f}-{rows.max():.2f}, by column {cols.min():.2f}-{cols.max():.2f}; by AC kept "
              + "  ".join(f"{k}: {v:.2f}" for k, v in out[kind]["by AC coefficients kept"].items()), flush=True)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probes", nargs="+", choices=("deblock", "clamp", "local"), default=["deblock", "clamp", "local"])
    p.add_argument("--model", default="real_srresnet_x4", help="the photo model, run as the enlarger runs each file")
    p.add_argument("--json", type=Path, help="default: experiments/heavy/probes_<model>.json")
    args = p.parse_args(argv)
    args.json = args.json or Path(f"experiments/heavy/probes_{args.model}.json")
    work = Path(tempfile.mkdtemp(prefix="probes_"))
    with torch.no_grad():
        results = {"model": args.model}
        if "deblock" in args.probes:
            results["deblock"] = probe_deblock(work)
        if "clamp" in args.probes:
            results["clamp"] = probe_clamp(args.model, work)
        if "local" in args.probes:
            results["local"] = probe_local(args.model, work)
    args.json.write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
