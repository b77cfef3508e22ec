#!/usr/bin/env bash
# Issue 20, second try on a CPU with AMX (Intel Xeon, bf16 autocast, the default there; 4.25x fp32 for
# srresnet-noin by `python -m bench.bench_train --only throughput`): real_srresnet_x4 fine-tuned on the
# field mix, one thread, ~20x the samples the AMD fp32 attempt (field_srresnet_x4.sh) could give it.
# Mix: more WebP, noise and second rounds than that attempt; BSDS200 at stride 36 (14,630 patches).
# Chosen on BSDS200-val over the six field kinds (--eval-degrade), EMA weights.
# Resumable: rerun the script after a stop (SIGTERM saves last.pth).
set -euo pipefail
cd "$(dirname "$0")/../.."; . .venv/bin/activate; export SR_DATA="${SR_DATA:-../shared/datasets}" OMP_NUM_THREADS="${THREADS:-1}"
[ -f data/h5/BSDS200_x4_lr-hr_rgb.h5 ] || python prepare_h5.py --scale 4 --layout lr-hr --color rgb --images BSDS200 --val-images 10 \
  --patch-size 100 --stride 36 --output data/h5/BSDS200_x4_lr-hr_rgb.h5 --eval-output data/h5/BSDS200-val_x4_lr-hr_rgb.h5
OUT=runs/i20/field_amx_srresnet_x4
python train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb --epochs "${EPOCHS:-12}" --batch-size 16 --lr 1e-4 \
  --train data/h5/BSDS200_x4_lr-hr_rgb.h5 --eval data/h5/BSDS200-val_x4_lr-hr_rgb.h5 --init weights/real_srresnet_x4.safetensors --seed 11 --ema 0.999 \
  --degrade --degrade-clean-prob 0.1 --degrade-blur-prob 0.1 --degrade-blur-sigma 0.2 1.5 --degrade-resize-modes bicubic \
  --degrade-noise-prob 0.3 --degrade-noise-sigma 1 8 --degrade-jpeg-prob 0.9 --degrade-jpeg-quality 50 95 --degrade-webp-share 0.4 \
  --degrade-grid-shift-prob 0.5 --degrade-resize-after-prob 0.15 --degrade-second-prob 0.3 \
  --eval-degrade clean jpeg:75 webp:75 resized resaved noisy --out $OUT $( [ -f $OUT/last.pth ] && echo --resume $OUT/last.pth )
