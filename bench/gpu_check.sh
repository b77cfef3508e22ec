#!/usr/bin/env bash
# Everything this project wants from a GPU, in one prepared run (a few minutes on one H100):
#   1. the CUDA tests (tests/test_cuda.py, skipped on machines without a GPU);
#   2. a short real SRResNet x4 training on BSDS200 patches, fp32 against --amp --channels-last
#      and against --amp --channels-last --compile: end-to-end samples/s (data loading included)
#      from metrics.csv, and the eval PSNR on BSDS100.
# Needs data/h5/BSDS200_x4_lr-hr_rgb.h5 and data/h5/BSDS100_x4_lr-hr_rgb.h5 (prepare_h5.py
# --scale 4 --layout lr-hr --color rgb), or other files named by TRAIN and EVAL.
# Usage: bash bench/gpu_check.sh [OUT_DIR] [EPOCHS]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/results/gpu}"
epochs="${2:-1}"
train="${TRAIN:-data/h5/BSDS200_x4_lr-hr_rgb.h5}"
eval="${EVAL:-data/h5/BSDS100_x4_lr-hr_rgb.h5}"
mkdir -p "$out"
export PYTHONPATH=.
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -5

for variant in "fp32:--no-amp" "amp+cl:--amp --channels-last" "amp+cl+compile:--amp --channels-last --compile"; do
  name="${variant%%:*}"
  flags="${variant#*:}"
  rm -rf "$out/$name"
  # shellcheck disable=SC2086
  python3 train_srgan.py --phase pretrain --arch srresnet --loss l1 --epochs "$epochs" --batch-size 128 --workers 4 \
    --train "$train" --eval "$eval" --device cuda $flags --out "$out/$name" > "$out/$name.log" 2>&1
  echo "$name: $(tail -1 "$out/$name/metrics.csv" | awk -F, '{print "samples/s " $7 ", eval psnr " $3 ", epoch seconds " $6}')"
done
