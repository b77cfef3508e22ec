#!/usr/bin/env bash
# The photo models' heavy anchors: fine-tuned for heavily compressed files, JPEG and WebP down to
# quality 20, and double compression (a JPEG saved again as WebP, or again as JPEG on a shifted grid).
#
#   bash experiments/cpu_runs/heavy_photo.sh fast     # heavy_fsrcnn_x4 from real_fsrcnn_x4: ~1 min an epoch
#   bash experiments/cpu_runs/heavy_photo.sh default  # heavy_srresnet_x4 from real_srresnet_x4: ~6 min an epoch
#
# (one thread each, 2-core AMD EPYC with avx512_bf16, bf16 autocast: the default there).
# Resumable: run it again after a stop (SIGTERM and Ctrl-C save last.pth). THREADS (default 1) sets
# the threads, so the two can run side by side on a 2-core machine; EPOCHS overrides the epochs.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export SR_DATA="${SR_DATA:-../shared/datasets}" OMP_NUM_THREADS="${THREADS:-1}"
h5=data/h5
[ -f $h5/BSDS200_x4_lr-hr_rgb_s72.h5 ] || python prepare_h5.py --scale 4 --layout lr-hr --color rgb --images BSDS200 \
  --val-images 10 --patch-size 100 --stride 72 --output $h5/BSDS200_x4_lr-hr_rgb_s72.h5 --eval-output $h5/BSDS200-val_x4_lr-hr_rgb.h5
[ -f $h5/BSDS200-val_x4_lr-hr_y.h5 ] || python prepare_h5.py --scale 4 --layout lr-hr --color y --images BSDS200 \
  --val-images 10 --patch-size 100 --stride 72 --output $h5/BSDS200_x4_lr-hr_y_s72.h5 --eval-output $h5/BSDS200-val_x4_lr-hr_y.h5

# The heavy anchors: fine-tuned from the shipped photo models on heavy compression only, so that the
# enlarger can blend toward them by the quality read from a file (sr.weights.default_choice). The mix:
# every sample compressed at quality 20-60 (40% WebP, half the grids shifted), half of them saved
# again at 50-90, half of those in the other format; light blur and noise as the shipped recipes.
mix=(--degrade --degrade-clean-prob 0.05 --degrade-blur-prob 0.1 --degrade-blur-sigma 0.2 1.5 --degrade-resize-modes bicubic
  --degrade-noise-prob 0.15 --degrade-noise-sigma 1 5 --degrade-jpeg-prob 1 --degrade-jpeg-quality 20 60
  --degrade-webp-share 0.4 --degrade-grid-shift-prob 0.5 --degrade-second-prob 0.5 --degrade-second-quality 50 90
  --degrade-second-noise-sigma 0 2 --degrade-second-swap-prob 0.5)
# Chosen on BSDS200-val (10 photos held out of training) over the heavy field kinds, mean Y PSNR.
kinds=(--eval-degrade jpeg:30 jpeg:40 webp:30 webp:40 jpeg:50+webp:70 jpeg:40+jpeg:80)

case "${1:-}" in
  fast)
    out=runs/heavy/heavy_fsrcnn_x4
    cmd=(train_srcnn.py --arch fsrcnn-deep --loss mse --scale 4 --color y --epochs "${EPOCHS:-20}" --batch-size 32 --lr 1e-4
      --last-layer-lr 0.1 --eval $h5/BSDS200-val_x4_lr-hr_y.h5 --init weights/real_fsrcnn_x4.safetensors --seed 30) ;;
  default)
    out=runs/heavy/heavy_srresnet_x4
    cmd=(train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb --epochs "${EPOCHS:-12}"
      --batch-size 16 --lr 5e-5 --eval $h5/BSDS200-val_x4_lr-hr_rgb.h5 --init weights/real_srresnet_x4.safetensors --seed 31) ;;
  *) echo "usage: $0 fast|default" >&2; exit 2 ;;
esac
resume=()
[ -f $out/last.pth ] && resume=(--resume $out/last.pth)
python "${cmd[@]}" --train $h5/BSDS200_x4_lr-hr_rgb_s72.h5 --ema 0.999 "${mix[@]}" "${kinds[@]}" --out $out "${resume[@]}"
