"""The baseline for bench_train.py: a plain SRCNN trainer of the kind most tutorials ship.

float32 patches in HDF5, read one item at a time by a Dataset (each of the 2 loader
workers opens the file once, which is kinder than opening it per item), fp32 NCHW,
Adam + MSE at batch 32, and a PSNR evaluation on the eval images after the epoch.
Not part of the library: it exists to be measured against.

    python bench/plain_trainer.py --train f32.h5 --eval data/h5/Set5_x3_upsampled_y.h5 --epochs 1
"""

from __future__ import annotations

import argparse
import time

import h5py
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class FloatPatches(Dataset):
    def __init__(self, path: str):
        self.path = path
        with h5py.File(path, "r") as f:
            self.length = len(f["lr"])
        self.file = None

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self.file is None:
            self.file = h5py.File(self.path, "r")
        return self.file["lr"][i], self.file["hr"][i]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 64, 9, padding=4), nn.ReLU(), nn.Conv2d(64, 32, 5, padding=2), nn.ReLU(),
                          nn.Conv2d(32, 1, 5, padding=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(FloatPatches(args.train), batch_size=32, shuffle=True, num_workers=args.workers, drop_last=True)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for lr, hr in loader:
            loss = nn.functional.mse_loss(model(lr), hr)
            opt.zero_grad()
            loss.backward()
            opt.step()
        psnrs = []
        with torch.no_grad(), h5py.File(args.eval, "r") as f:
            for g in f["images"].values():
                x = torch.from_numpy(g["input"][...][None] / 255.0).float()
                y = torch.from_numpy(np.round(np.asarray(g["hr"][...], dtype=np.float64) @ [65.481, 128.553, 24.966] / 255 + 16))
                out = model(x).clamp(0, 1)[0, 0].double() * 255
                psnrs.append(10 * np.log10(255**2 / ((out - y) ** 2).mean().item()))
        print(f"epoch {epoch + 1}: loss {loss.item():.6f} psnr {np.mean(psnrs):.2f} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
