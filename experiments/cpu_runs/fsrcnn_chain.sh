#!/usr/bin/env bash
# Issue 22's FSRCNN chain on one thread: x3 fine-tune (L1, then MSE), then x4 and x2 from x3.
# As run in the session that made it (weights/*.pth were then the earlier models; this assumes a .venv). To
# replay a shipped model use its recipe instead: python -m experiments.reproduce weights/NAME.json
set -euo pipefail
cd "$(dirname "$0")/../.."; . .venv/bin/activate; export SR_DATA="${SR_DATA:-../shared/datasets}" OMP_NUM_THREADS=1
P3="--train data/h5/T91_x3_lr-hr_y_aug5.h5 --eval data/h5/T91-val_x3_lr-hr_y.h5"
[ -f runs/i22/fsrcnn_x3_l1/done ] || { python train_srcnn.py --arch fsrcnn-paper --loss l1 --scale 3 --epochs 7 --batch-size 32 --lr 3e-4 --last-layer-lr 0.1 --ema 0.999 $P3 --init weights/fsrcnn_x3.pth --seed 3 --out runs/i22/fsrcnn_x3_l1 $( [ -f runs/i22/fsrcnn_x3_l1/last.pth ] && echo --resume runs/i22/fsrcnn_x3_l1/last.pth ) && touch runs/i22/fsrcnn_x3_l1/done; }
[ -f runs/i22/fsrcnn_x3_mse/done ] || { python train_srcnn.py --arch fsrcnn-paper --loss mse --scale 3 --epochs 1 --batch-size 32 --lr 5e-5 --last-layer-lr 0.1 --ema 0.999 $P3 --init runs/i22/fsrcnn_x3_l1/best.pth --seed 4 --out runs/i22/fsrcnn_x3_mse $( [ -f runs/i22/fsrcnn_x3_mse/last.pth ] && echo --resume runs/i22/fsrcnn_x3_mse/last.pth ) && touch runs/i22/fsrcnn_x3_mse/done; }
for s in 4 2; do
  P="--train data/h5/T91_x${s}_lr-hr_y_aug5.h5 --eval data/h5/T91-val_x${s}_lr-hr_y.h5"
  [ -f runs/i22/fsrcnn_x${s}/done ] || { python train_srcnn.py --arch fsrcnn-paper --loss mse --scale $s --epochs $([ $s = 4 ] && echo 2 || echo 1) --batch-size 32 --lr 2e-4 --last-layer-lr 1 --ema 0.999 $P --init runs/i22/fsrcnn_x3_mse/best.pth --seed 5 --out runs/i22/fsrcnn_x${s} $( [ -f runs/i22/fsrcnn_x${s}/last.pth ] && echo --resume runs/i22/fsrcnn_x${s}/last.pth ) && touch runs/i22/fsrcnn_x${s}/done; }
done
