#!/usr/bin/env bash
# Issue 20 point 4 on one lent GPU, in one call: the default model and the photo model retrained so
# that no choice in their chain is made on an image they trained on.
#
#   mkdir -p .device/datasets && cp -r ../shared/datasets/BSDS200 .device/datasets/   # here, once
#   bash experiments/gpu_field.sh $OUT [BUDGET_SECONDS]           # on the device machine, carry [".device"]
#   DEVICE=cpu EPOCHS=1 MAX_IMAGES=3 PREP_EXTRA="--patch-size 48 --stride 96" \
#     SR_DATA=../shared/datasets bash experiments/gpu_field.sh /tmp/dry 900    # a dry run of the plumbing here
#
# 1. srresnet_x4 again (srresnet-noin, L1, the shipped recipe: 8 epochs, batch 64, lr 5e-4 cosine,
#    each device's default precision: bf16 on the GPU, fp32 on a CPU without native bf16) on
#    BSDS200 minus its 10 validation images, the best epoch chosen on BSDS200-val (the shipped
#    one trained on all 200 and watched Set5).
# 2. real_srresnet_x4's chain from it: the photo mix with the field steps (WebP, shifted
#    grids, resizes after saving, second rounds), then JPEG 60-95; each chosen on BSDS200-val over
#    the mild and heavy field kinds together (--eval-degrade, 12 kinds).
# 3. Its heavy anchor (experiments/cpu_runs/heavy_photo.sh's recipe on the GPU): JPEG/WebP at quality
#    20-60 and double compression, chosen on the heavy kinds.
# STEPS=heavy runs only the two heavy anchors, longer than a CPU can (stride 36, 25 and 50 epochs),
# from the shipped photo models, side by side on the one GPU; the rest of the chain is skipped.
# Data: BSDS200 is read from $SR_DATA (default .device/datasets, a git-ignored copy to name in
# `carry`: 50 MB; with the working tree, under 64 MiB only once the weights no step reads are moved
# aside for the call); test sets are not needed here and not read.
# BUDGET_SECONDS (default 540) is a hard deadline: a job still running then is stopped with
# SIGTERM (it saves; its best.pth so far is kept), killed 20 s later if it has not ended (a run once
# hung after saving, and the whole call ran out before packing), and the results are packed anyway.
# Output: OUT_DIR/<run>.tar.gz (the run's weights-only best.pth, metrics.csv, args.json), log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out="$1"
budget="${2:-540}"
mkdir -p "$out"
# safetensors (the shipped weights' format) from .device/pylib where the machine lacks it (an abi3 wheel's files)
export PYTHONPATH=.:.device/pylib PYTHONUNBUFFERED=1 SR_DATA="${SR_DATA:-.device/datasets}"
log="$out/log.txt"
start=$(date +%s)
deadline=$(( start + budget ))
say() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$log"; }
left() { local l=$(( deadline - $(date +%s) - 30 )); echo $(( l > 1 ? l : 1 )); }  # 30 s kept for packing
py=python3
dev="${DEVICE:-cuda}"
epochs="${EPOCHS:-}"
images=()
[ -n "${MAX_IMAGES:-}" ] && images=(--max-images "$MAX_IMAGES")
runs=runs/gpu20
h5=data/h5/gpu20
mkdir -p "$h5" "$runs"
say "$($py -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"

prep() { OMP_NUM_THREADS=2 $py prepare_h5.py --scale 4 --layout lr-hr --color rgb --images BSDS200 --val-images 10 "${images[@]}" "$@" \
  ${PREP_EXTRA:-} >> "$out/prepare.log" 2>&1 || say "prepare failed: $*"; }
if [ "${STEPS:-all}" = heavy ]; then
  prep --patch-size 100 --stride 36 --output $h5/BSDS200_x4.h5 --eval-output $h5/BSDS200-val_x4.h5 &
  prep --patch-size 100 --stride 200 --color y --output $h5/unused_y.h5 --eval-output $h5/BSDS200-val_x4_y.h5 &
else
  prep --augment --rescale 1 --output $h5/BSDS200_x4_aug.h5 --eval-output $h5/BSDS200-val_x4.h5 &
  prep --patch-size 100 --stride 36 --output $h5/BSDS200_x4.h5 --eval-output $h5/BSDS200-val_x4_b.h5 &
fi
wait
say "data: $(ls $h5 | tr '\n' ' ')"

# train NAME SCRIPT FLAGS...: one run under the deadline; SIGTERM saves and keeps best.pth.
train() {
  local name=$1 script=$2
  shift 2
  timeout -k 20 -s TERM "$(left)" $py "$script" "$@" --device "$dev" --out "$runs/$name" > "$out/$name.log" 2>&1
  local rc=$?
  say "$name exit $rc: $(tail -1 "$runs/$name/metrics.csv" 2>/dev/null)"
  [ -f "$runs/$name/best.pth" ]
}
field=(--eval-degrade clean jpeg:75 webp:75 resized resaved noisy jpeg:30 jpeg:40 webp:30 webp:40 jpeg:50+webp:70 jpeg:40+jpeg:80)
heavy_kinds=(--eval-degrade jpeg:30 jpeg:40 webp:30 webp:40 jpeg:50+webp:70 jpeg:40+jpeg:80)
steps=(--degrade-webp-share 0.35 --degrade-grid-shift-prob 0.5 --degrade-resize-after-prob 0.15 --degrade-second-prob 0.2)

# The heavy mix of experiments/cpu_runs/heavy_photo.sh: JPEG/WebP at quality 20-60, half saved again.
heavy_mix=(--ema 0.999 --degrade --degrade-clean-prob 0.05 --degrade-blur-prob 0.1 --degrade-blur-sigma 0.2 1.5
  --degrade-resize-modes bicubic --degrade-noise-prob 0.15 --degrade-noise-sigma 1 5 --degrade-jpeg-prob 1
  --degrade-jpeg-quality 20 60 --degrade-webp-share 0.4 --degrade-grid-shift-prob 0.5 --degrade-second-prob 0.5
  --degrade-second-quality 50 90 --degrade-second-noise-sigma 0 2 --degrade-second-swap-prob 0.5 "${heavy_kinds[@]}")
if [ "${STEPS:-all}" = heavy ]; then
  train heavy_srresnet_x4 train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb \
    --epochs "${epochs:-25}" --batch-size 32 --lr 1e-4 --train $h5/BSDS200_x4.h5 --eval $h5/BSDS200-val_x4.h5 \
    --init weights/real_srresnet_x4.safetensors --seed 31 --workers 10 "${heavy_mix[@]}" &
  train heavy_fsrcnn_x4 train_srcnn.py --arch fsrcnn-deep --loss mse --scale 4 --color y \
    --epochs "${epochs:-50}" --batch-size 32 --lr 1e-4 --last-layer-lr 0.1 --train $h5/BSDS200_x4.h5 \
    --eval $h5/BSDS200-val_x4_y.h5 --init weights/real_fsrcnn_x4.safetensors --seed 30 --workers 4 "${heavy_mix[@]}" &
  wait
else
train srresnet_x4 train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb \
  --epochs "${epochs:-8}" --batch-size 64 --lr 5e-4 --train $h5/BSDS200_x4_aug.h5 --eval $h5/BSDS200-val_x4.h5 --seed 0 --workers 4 &&
train real_mix train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb \
  --epochs "${epochs:-9}" --batch-size 32 --lr 1e-4 --train $h5/BSDS200_x4.h5 --eval $h5/BSDS200-val_x4.h5 \
  --init $runs/srresnet_x4/best.pth --seed 0 --workers 12 --degrade --degrade-clean-prob 0.2 --degrade-blur-prob 0.15 \
  --degrade-blur-sigma 0.2 1.5 --degrade-resize-modes bicubic --degrade-noise-prob 0.15 --degrade-noise-sigma 1 5 \
  --degrade-jpeg-quality 40 95 "${steps[@]}" "${field[@]}" &&
train real_jpeg train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb \
  --epochs "${epochs:-9}" --batch-size 32 --lr 5e-5 --train $h5/BSDS200_x4.h5 --eval $h5/BSDS200-val_x4.h5 \
  --init $runs/real_mix/best.pth --seed 1 --workers 12 --degrade --degrade-blur-prob 0 --degrade-resize-modes bicubic \
  --degrade-noise-prob 0 --degrade-jpeg-prob 1 --degrade-jpeg-quality 60 95 "${steps[@]}" "${field[@]}" &&
train heavy_srresnet_x4 train_srgan.py --phase pretrain --arch srresnet-noin --loss l1 --scale 4 --color rgb \
  --epochs "${epochs:-9}" --batch-size 32 --lr 5e-5 --train $h5/BSDS200_x4.h5 --eval $h5/BSDS200-val_x4.h5 \
  --init $runs/real_jpeg/best.pth --seed 2 --workers 12 "${heavy_mix[@]}"
fi
say "trainings done"

# Weights-only copies (no optimiser state): what comes back is small.
$py -m experiments.weights_only runs/gpu20 2>&1 | tee -a "$log"  # last.pth stays behind (what comes back is limited)
# One archive a run (what comes back from the device: 8 files, 16 MiB each); an SRResNet is ~6 MB.
for run in $runs/*/; do
  tar czf "$out/$(basename "$run").tar.gz" --exclude='best.pth' --exclude='last.pth' --exclude='*.probe' "$run"
done
ls -la "$out" | tee -a "$log"
say "session done"
