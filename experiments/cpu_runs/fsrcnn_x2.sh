#!/usr/bin/env bash
# Issue 22: the shipped fsrcnn_x2 (x3 45 epochs + x2 8 epochs, 137 recorded minutes) given what lifted fsrcnn_x3
# by 0.11 dB on Set5: the FSRCNN paper's rescaled copies (aug5), the deconvolution at a tenth of the rate, EMA,
# fp32; L1 as the x3 run that shipped. Three epochs (~12 min each at 1,560 samples/s): what the 3-hour chain budget leaves (about 43 minutes, one thread).
# Chosen on T91-val (t18 t34 t51 t8 tt25, the hold-out of every recorded T91 recipe). Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."; . .venv/bin/activate; export SR_DATA="${SR_DATA:-../shared/datasets}" OMP_NUM_THREADS="${THREADS:-1}"
[ -f data/h5/T91_x2_lr-hr_y_aug5.h5 ] || python prepare_h5.py --scale 2 --layout lr-hr --color y --images T91 --val-images 5 --patch-size 22 \
  --stride 10 --augment --rescale 1 0.9 0.8 0.7 0.6 --output data/h5/T91_x2_lr-hr_y_aug5.h5 --eval-output data/h5/T91-val_x2_lr-hr_y.h5
OUT=runs/i22/fsrcnn_x2_aug5
python train_srcnn.py --arch fsrcnn-paper --loss l1 --scale 2 --color y --epochs 3 --batch-size 32 --lr 3e-4 --last-layer-lr 0.1 --ema 0.999 \
  --no-amp --train data/h5/T91_x2_lr-hr_y_aug5.h5 --eval data/h5/T91-val_x2_lr-hr_y.h5 --init weights/fsrcnn_x2.safetensors --seed 6 \
  --out $OUT $( [ -f $OUT/last.pth ] && echo --resume $OUT/last.pth )
