#!/usr/bin/env bash
# Everything this project wants from a GPU, in one prepared run (~5 min on one H100/H200):
#   1. the CUDA tests (tests/test_cuda.py, skipped on machines without a GPU; --compile included);
#   2. a short real SRResNet x4 pretraining on BSDS200 patches (15,400, batch 128), the patches held on
#      the GPU: end-to-end samples/s per epoch (data included, eval excluded) from metrics.csv for the
#      default precision (bf16 autocast + channels-last on a bf16 GPU), fp32, bf16 in NCHW, SRResNet without
#      InstanceNorm, and --compile; the eval PSNR. Target: >= 7,500 samples/s for the default.
# Data: TRAIN and EVAL (default data/h5/BSDS200_x4_lr-hr_rgb.h5 and data/h5/Set5_x4_lr-hr_rgb.h5), made by
# prepare_h5.py when missing, from IMAGES and EVAL_IMAGES (set names under $SR_DATA, or folders).
# Usage: bash bench/gpu_check.sh [OUT_DIR] [EPOCHS]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/results/gpu}"
epochs="${2:-2}"
train="${TRAIN:-data/h5/BSDS200_x4_lr-hr_rgb.h5}"
eval="${EVAL:-data/h5/Set5_x4_lr-hr_rgb.h5}"
mkdir -p "$out"
export PYTHONPATH=.
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
if [ ! -f "$train" ] || [ ! -f "$eval" ]; then
  start=$(date +%s)
  python3 prepare_h5.py --scale 4 --layout lr-hr --color rgb --images "${IMAGES:-BSDS200}" --eval-images "${EVAL_IMAGES:-Set5}" \
    --output "$train" --eval-output "$eval" > "$out/prepare.log" 2>&1 || { tail -5 "$out/prepare.log"; exit 1; }
  echo "prepare_h5.py: $(( $(date +%s) - start )) s"
fi
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -5

for variant in "default:" "fp32:--no-amp" "nchw:--no-channels-last" "noin:--arch srresnet-noin" "compile:--compile"; do
  name="${variant%%:*}"
  flags="${variant#*:}"
  rm -rf "$out/$name"
  # shellcheck disable=SC2086
  python3 train_srgan.py --phase pretrain --arch srresnet --loss l1 --epochs "$epochs" --batch-size 128 \
    --train "$train" --eval "$eval" --device cuda $flags --out "$out/$name" > "$out/$name.log" 2>&1
  echo "$name ($flags): $(head -1 "$out/$name.log")"
  tail -n +2 "$out/$name/metrics.csv" | awk -F, '{print "  epoch " $1 ": samples/s " $7 ", epoch seconds " $6 ", eval psnr " $3}'
done
