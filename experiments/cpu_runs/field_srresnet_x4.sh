#!/usr/bin/env bash
# Issue 20: real_srresnet_x4 fine-tuned on the field mix (WebP, shifted grids, resized after saving, second saves), one thread.
# As run in the session that made it (weights/*.pth were then the earlier models; this assumes a .venv). To
# replay a shipped model use its recipe instead: python -m experiments.reproduce weights/NAME.json
set -euo pipefail
cd "$(dirname "$0")/../.."; . .venv/bin/activate; export SR_DATA="${SR_DATA:-../shared/datasets}" OMP_NUM_THREADS=1
OUT=runs/i20/field_srresnet_x4
python train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb --epochs 4 --batch-size 16 --lr 5e-5 \
  --train data/h5/BSDS200_x4_lr-hr_rgb_s72.h5 --eval data/h5/BSDS200-val_x4_lr-hr_rgb.h5 --init weights/real_srresnet_x4.pth --seed 7 --ema 0.998 \
  --degrade --degrade-clean-prob 0.15 --degrade-blur-prob 0.1 --degrade-blur-sigma 0.2 1.5 --degrade-resize-modes bicubic \
  --degrade-noise-prob 0.2 --degrade-noise-sigma 1 6 --degrade-jpeg-prob 0.9 --degrade-jpeg-quality 50 95 --degrade-webp-share 0.35 \
  --degrade-grid-shift-prob 0.5 --degrade-resize-after-prob 0.15 --degrade-second-prob 0.2 \
  --eval-degrade clean jpeg:75 webp:75 resized resaved noisy --out $OUT $( [ -f $OUT/last.pth ] && echo --resume $OUT/last.pth )
