#!/usr/bin/env bash
# Everything this project asks of one lent GPU, in one call: the CUDA tests, the SRResNet
# throughput check, and the training of the shipped weights inside a time budget.
#
#   SR_DATA=<data root> bash experiments/gpu_session.sh OUT_DIR BUDGET_SECONDS [SCALE_DOWN]
#
# Every checkpoint is picked on validation images held out of its training set (T91-val,
# BSDS200-val; prepare_h5.py's default); no test set is read here. The shipped files are
# scored on Set5/Set14/BSDS100 afterwards by eval.py. Each job sizes its epoch count to its
# share of the budget from a one-epoch probe of the same settings, so every cosine schedule
# ends at zero. SCALE_DOWN (default 1) divides the budgets, for a dry run on a CPU.
# BUDGET_SECONDS is a hard deadline for the trainings: a job still running then is stopped
# (its best.pth so far is kept), so the results are always packed. (The first session ran
# without one: its degraded-data jobs ran past the call's limit and nothing came back.)
# Output: OUT_DIR/runs.tar.gz (weights-only checkpoints, metrics.csv, args.json of every
# run), OUT_DIR/log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out="$1"
budget="$2"
down="${3:-1}"
mkdir -p "$out"
export PYTHONPATH=. PYTHONUNBUFFERED=1
log="$out/log.txt"
start=$(date +%s)
deadline=$(( start + budget / down ))
say() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$log"; }
left() { local l=$(( deadline - $(date +%s) )); echo $(( l > 1 ? l : 1 )); }
py=python3
dev="${DEVICE:-cuda}"
threads="${JOB_THREADS:-1}"  # seven jobs and their loader workers share the machine's cores

say "$($py -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"
if [ "$dev" = cuda ]; then
  (OMP_NUM_THREADS=1 $py -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$out/test_cuda.log" 2>&1; tail -1 "$out/test_cuda.log" | tee -a "$log") &
fi

h5=data/h5
prep() { OMP_NUM_THREADS=1 $py prepare_h5.py "$@" >> "$out/prepare.log" 2>&1 || say "prepare failed: $*"; }
patches() { $py -c "import h5py; print(h5py.File('$1', 'r')['lr'].shape[0])"; }
rate() { tail -1 "$1/metrics.csv" | awk -F, '{print $NF}'; }

# The data: RGB x4 from BSDS200 (the real-photo models), Y from T91 (FSRCNN, SRCNN); each
# with its validation images held out (prepare_h5.py's default: 5 of T91, 10 of BSDS200).
prep --scale 4 --layout lr-hr --color rgb --output $h5/BSDS200_x4_lr-hr_rgb.h5 &
for s in 2 3 4; do
  prep --scale $s --layout lr-hr --output $h5/T91_x${s}_lr-hr_y.h5 &
  prep --scale $s --layout lr-hr --augment --output $h5/T91_x${s}_lr-hr_y_aug.h5 &
  prep --scale $s --output $h5/T91_x${s}_upsampled_y.h5 &
done
prep --scale 3 --augment --output $h5/T91_x3_upsampled_y_aug.h5 &
wait
say "data ready: $(ls $h5 | tr '\n' ' ')"

# fit NAME SECONDS PLAIN TRAIN SCRIPT FLAGS...: a one-epoch probe on PLAIN, then the run on
# TRAIN with as many epochs as fit in SECONDS (the cosine schedule then ends at zero).
fit() {
  local name=$1 seconds=$(( $2 / down )) plain=$3 train=$4 script=$5
  shift 5
  local runs=runs/gpu
  rm -rf "$runs/$name.probe" "$runs/$name"
  OMP_NUM_THREADS=$threads timeout "$(left)" $py "$script" "$@" --epochs 1 --train "$plain" --device "$dev" --out "$runs/$name.probe" \
    > "$out/$name.probe.log" 2>&1 || { say "$name probe failed"; tail -3 "$out/$name.probe.log" | tee -a "$log"; return 1; }
  local r n e
  r=$(rate "$runs/$name.probe")
  n=$(patches "$train")
  # The probe's epoch includes start-up and warm-up; the deadline catches what it misjudges.
  e=$($py -c "print(max(1, int(min($seconds, $(left)) * $r / $n)))")
  say "$name: probe $r samples/s -> $e epochs of $n patches in ~${seconds}s"
  OMP_NUM_THREADS=$threads timeout -s INT "$(left)" $py "$script" "$@" --epochs "$e" --train "$train" --device "$dev" --out "$runs/$name" \
    > "$out/$name.log" 2>&1 || { say "$name failed"; tail -3 "$out/$name.log" | tee -a "$log"; return 1; }
  say "$name done: $(tail -1 "$runs/$name/metrics.csv")"
}
t=${TRAIN_SECONDS:-190}

# Real photos: SRResNet fine-tuned from the shipped srresnet_x4 with on-the-fly degradations,
# and a fast FSRCNN (paper layout, RGB) from scratch.
fit real_srresnet_x4 $t $h5/BSDS200_x4_lr-hr_rgb.h5 $h5/BSDS200_x4_lr-hr_rgb.h5 train_srgan.py \
  --phase pretrain --arch srresnet-noin --loss l1 --batch-size 64 --lr 2e-4 --workers 7 --degrade --init weights/srresnet_x4.safetensors &
fit real_fsrcnn_x4 $t $h5/BSDS200_x4_lr-hr_rgb.h5 $h5/BSDS200_x4_lr-hr_rgb.h5 train_srcnn.py \
  --arch fsrcnn-paper --color rgb --scale 4 --loss l1 --batch-size 64 --lr 2e-3 --workers 3 --degrade &
# FSRCNN x2/x3/x4 (paper layout) on T91 less its 5 validation images, L1.
for s in 2 3 4; do
  fit fsrcnn_x$s $t $h5/T91_x${s}_lr-hr_y.h5 $h5/T91_x${s}_lr-hr_y_aug.h5 train_srcnn.py \
    --arch fsrcnn-paper --scale $s --loss l1 --batch-size 128 --lr 2e-3 &
done
# SRCNN x3, then x2 and x4 fine-tuned from it (as the shipped srcnn_x2/x4 were).
(
  fit srcnn_x3 $(( t * 3 / 4 )) $h5/T91_x3_upsampled_y.h5 $h5/T91_x3_upsampled_y_aug.h5 train_srcnn.py \
    --arch srcnn --scale 3 --loss l1 --batch-size 128 --lr 1e-3
  for s in 2 4; do
    fit srcnn_x$s $(( t / 5 )) $h5/T91_x${s}_upsampled_y.h5 $h5/T91_x${s}_upsampled_y.h5 train_srcnn.py \
      --arch srcnn --scale $s --loss l1 --batch-size 128 --lr 3e-4 --init runs/gpu/srcnn_x3/best.pth &
  done
  wait
) &
wait
say "trainings done"

# Weights-only copies (no optimizer state) of every run's validation-best and last epoch.
$py -m experiments.weights_only runs/gpu --names best.pth last.pth 2>&1 | tee -a "$log"
tar czf "$out/runs.tar.gz" --exclude='*.probe' --exclude='best.pth' --exclude='last.pth' runs/gpu
ls -la "$out" | tee -a "$log"
say "session done"
