"""A deblocking stage trained apart, before the photo model: does it remove the cells? Trained and scored on BSDS200 only.

    python -m experiments.lr_deblocker train                  # 37 min on 2 cores -> runs/deblocker/deblocker.pth
    python -m experiments.lr_deblocker score                  # BSDS200-val, every field kind -> experiments/heavy/deblocker.json
    python -m experiments.lr_deblocker figure --kind jpeg:30  # for the eye: the field benchmark's foliage crop

A small residual CNN (8 convolutions of 3x3, 64 channels, 0.23 M parameters) maps a compressed LR
to the clean LR it came from (the evaluation protocol's MATLAB-bicubic LR), in RGB. Training: the
190 BSDS200 photos not held out for validation, each step 32 crops of 48 px from LRs saved at
random: quality 15-60 (three quarters) or 60-90, JPEG or WebP (40%), the grid moved half the
time, and a third of them saved twice (a first save at 20-60 in either format, then 50-90).
L1 loss, Adam 2e-4 then 5e-5 for the last 30% of the steps, bf16 autocast where the CPU has it.

``score`` saves each of the 10 held-out BSDS200-val photos as every field kind, reads the file
back, deblocks it, and enlarges it as the enlarger would run that file (the default's choice,
from the file's own quality) and with the photo model or the clean SRResNet alone; Y PSNR gain
over bicubic of the file as it was, and the share of 32x32 blocks harmed, as the field benchmark
scores them. Also the LR's RGB PSNR against the clean LR before and after. Test sets are not read.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from experiments.detail_rule import SCALE
from experiments.heavy_probes import gain_and_harm, upscaler_for, val_files
from sr.data.degradation import downscale, mod_crop
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, compress, field_degrade, save_field_lr, shifted_compress
from sr.data.images import load_rgb
from sr.data.sets import data_root
from sr.precision import choose_precision
from sr.protocol import bicubic_score
from sr.upscaler import Upscaler
from sr.weights import Choice, named_choice

WEIGHTS = Path("runs/deblocker/deblocker.pth")
PATCH, BATCH, STEPS, LR_RATES = 48, 32, 7000, (2e-4, 5e-5)


class Deblocker(nn.Module):
    def __init__(self, channels: int = 64, depth: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(self.body[-1].weight)  # starts as the identity: the file as it is
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def random_saves(lr: np.ndarray, rng: random.Random) -> np.ndarray:
    quality = rng.randint(15, 60) if rng.random() < 0.75 else rng.randint(60, 90)
    codec = "webp" if rng.random() < 0.4 else "jpeg"
    if rng.random() < 0.3:  # saved before, on another grid
        lr = shifted_compress(lr, rng.choice(["jpeg", "webp"]), rng.randint(20, 60), rng.randint(0, 7), rng.randint(0, 7))
        quality = rng.randint(50, 90)
    if rng.random() < 0.5:
        return shifted_compress(lr, codec, quality, rng.randint(0, 7), rng.randint(0, 7))
    return compress(lr, codec, quality)


def training_lrs() -> list[np.ndarray]:
    import h5py  # the held-out names, as the photo models' training file records them

    with h5py.File("data/h5/BSDS200_x4_lr-hr_rgb.h5") as f:
        held = set(json.loads(f.attrs["held_out"]))
    files = sorted(p for p in (data_root() / "BSDS200").glob("*.png") if p.name not in held)
    return [downscale(mod_crop(load_rgb(p), SCALE), SCALE) for p in files]


def batch(lrs: list[np.ndarray], rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = [], []
    for _ in range(BATCH):
        clean = lrs[rng.randrange(len(lrs))]
        saved = random_saves(clean, rng)
        y, x = rng.randint(0, clean.shape[0] - PATCH), rng.randint(0, clean.shape[1] - PATCH)
        a, b = saved[y:y + PATCH, x:x + PATCH], clean[y:y + PATCH, x:x + PATCH]
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if rng.random() < 0.5:
            a, b = a.transpose(1, 0, 2), b.transpose(1, 0, 2)
        inputs.append(np.ascontiguousarray(a))
        targets.append(np.ascontiguousarray(b))
    as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return as_tensor(inputs), as_tensor(targets)


def train(steps: int, out: Path) -> None:
    rng, lrs = random.Random(0), training_lrs()
    torch.manual_seed(0)
    net = Deblocker().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), LR_RATES[0])
    precision = choose_precision(torch.device("cpu"), None)
    print(f"{len(lrs)} training LRs; {steps} steps of {BATCH}; {precision.describe()}", flush=True)
    start, running = time.perf_counter(), None
    out.parent.mkdir(parents=True, exist_ok=True)
    for step in range(1, steps + 1):
        if step == int(0.7 * steps):
            for group in opt.param_groups:
                group["lr"] = LR_RATES[1]
        inputs, targets = batch(lrs, rng)
        with precision.autocast():  # bf16 only where the CPU has it natively (sr.precision)
            pred = net(inputs.contiguous(memory_format=torch.channels_last))
        loss = F.l1_loss(pred.float(), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 500 == 0 or step == steps:
            torch.save(net.state_dict(), out)
            print(f"step {step}: L1 {running:.5f}, {time.perf_counter() - start:.0f} s", flush=True)


@torch.no_grad()
def deblock(net: Deblocker, lr: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    return (net(x)[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)


PIPELINES = ("the default, as it runs now", "deblocked, then the default's choice", "deblocked, then real_srresnet_x4 (2 passes)",
             "deblocked, then srresnet_x4 (2 passes)")


def score(weights: Path, kinds: list[str], out: Path) -> dict:
    net = Deblocker()
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    work, upscalers, results = Path(tempfile.mkdtemp(prefix="deblocker_")), {}, {}
    enlarged = lambda choice, lr, hr: upscaler_for(choice, upscalers).score(lr, hr).image  # noqa: E731
    for kind in kinds:
        rows = []
        for _, hr, saved in val_files(kind, work):
            lr = np.array(Image.open(saved).convert("RGB"))
            clean, cleaned = field_degrade(hr, SCALE, "clean").astype(np.float64), deblock(net, lr)
            lr_psnr = [10 * np.log10(255**2 / max(np.mean((x - clean) ** 2), 1e-10)) for x in (lr, cleaned)]
            bicubic = bicubic_score(lr, hr, SCALE).image
            truth = hr[:bicubic.shape[0], :bicubic.shape[1]]
            choice = named_choice("real_srresnet_x4", saved)
            outputs = [enlarged(choice, lr, hr), enlarged(choice, cleaned, hr),
                       enlarged(Choice("real_srresnet_x4", "deblocked", passes=2), cleaned, hr),
                       enlarged(Choice("srresnet_x4", "deblocked", passes=2), cleaned, hr)]
            rows.append(lr_psnr + [v for o in outputs for v in gain_and_harm(o, bicubic, truth)])
        m = np.mean(rows, axis=0)
        results[kind] = {"LR PSNR against the clean LR": [m[0], m[1]],
                         **{name: [m[2 + 2 * i], m[3 + 2 * i]] for i, name in enumerate(PIPELINES)}}
        print(f"{kind:16s} LR {m[0]:.2f} -> {m[1]:.2f} dB; " + "; ".join(
            f"{name}: {m[2 + 2 * i]:+.3f}/{m[3 + 2 * i]:.1%}" for i, name in enumerate(PIPELINES)), flush=True)
    out.write_text(json.dumps({"weights": str(weights), "pipelines": PIPELINES, "results": results}, indent=1, default=float))
    return results


def figure(weights: Path, kind: str) -> Path:
    """The field benchmark's foliage crop (BSDS100 148026, looked at, never scored here), 2x nearest:
    bicubic | the default | deblocked, then the default's choice | bicubic of the deblocked LR | original."""
    from experiments.field import FIGURES, FOLIAGE
    from sr.figures import side_by_side
    from sr.data.images import save_image

    net = Deblocker()
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    name, (top, left, bottom, right) = FOLIAGE
    hr = mod_crop(load_rgb(data_root() / "BSDS100" / f"{name}.png"), SCALE)
    saved = save_field_lr(hr, SCALE, kind, Path(tempfile.mkdtemp(prefix="deblocker_")) / name)
    lr = np.array(Image.open(saved).convert("RGB"))
    up = Upscaler.chosen(named_choice("real_srresnet_x4", saved), amp=False)
    cleaned = deblock(net, lr)
    panels = [(bicubic_score(lr, hr, SCALE).image, "bicubic"), (up.score(lr, hr).image, "the default"),
              (up.score(cleaned, hr).image, "deblocked, then\nthe default's choice"),
              (bicubic_score(cleaned, hr, SCALE).image, "bicubic of\nthe deblocked LR"), (hr, "original")]
    zoom = lambda img: np.repeat(np.repeat(img[top:bottom, left:right], 2, axis=0), 2, axis=1)  # noqa: E731
    out = FIGURES / f"deblocker_{kind.replace(':', '').replace('+', '_')}_x{SCALE}.png"
    save_image(out, side_by_side([(zoom(img), caption) for img, caption in panels]))
    print(f"wrote {out}")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("train", "score", "figure"))
    p.add_argument("--kind", default="jpeg:30", help="figure: the field kind the photo is saved as")
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--json", type=Path, default=Path("experiments/heavy/deblocker.json"))
    args = p.parse_args(argv)
    if args.command == "train":
        train(args.steps, args.weights)
    elif args.command == "score":
        score(args.weights, [*FIELD_KINDS, *HEAVY_KINDS], args.json)
    else:
        figure(args.weights, args.kind)


if __name__ == "__main__":
    main()
