#!/usr/bin/env bash
# Train the shipped srresnet_x4 and srgan_x4 on one GPU inside a time budget, then export them
# (weights/<name>.pth and .json form) to OUT_DIR.
#   SR_DATA=... bash experiments/gpu_weights.sh OUT_DIR PRETRAIN_SECONDS
# Data: BSDS200 (augmented x8) for training; Set5 only to watch training (the shipped scores
# on Set5, Set14 and BSDS100 come from experiments/showcase.py). The pretraining's epoch
# count is sized to PRETRAIN_SECONDS from a one-epoch probe of the same settings, so the
# cosine schedule still ends at zero.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$1"
budget="$2"
export PYTHONPATH=.
plain=data/h5/BSDS200_x4_lr-hr_rgb.h5
aug=data/aug/BSDS200_x4_lr-hr_rgb_aug.h5
watch=data/aug/Set5_x4_lr-hr_rgb.h5
[ -f "$plain" ] || python3 prepare_h5.py --scale 4 --layout lr-hr --color rgb --output "$plain" --eval-output "$watch" --eval-images Set5
[ -f "$aug" ] || python3 prepare_h5.py --scale 4 --layout lr-hr --color rgb --augment --output "$aug" --eval-output "$watch" --eval-images Set5
runs=runs/gpu
pretrain=(--phase pretrain --arch srresnet-noin --loss l1 --scale 4 --batch-size 64 --lr 5e-4 --amp --channels-last --eval "$watch")
rm -rf "$runs/probe"
python3 train_srgan.py "${pretrain[@]}" --epochs 1 --train "$plain" --out "$runs/probe" > "$runs.probe.log" 2>&1
rate=$(tail -1 "$runs/probe/metrics.csv" | cut -d, -f7)
patches=$(python3 -c "import h5py; print(h5py.File('$aug', 'r')['lr'].shape[0])")
epochs=$(python3 -c "print(max(1, int($budget * $rate / $patches)))")
echo "probe: $rate samples/s at batch 64 -> $epochs epochs of $patches augmented patches in ~${budget}s"
python3 train_srgan.py "${pretrain[@]}" --epochs "$epochs" --train "$aug" --out "$runs/srresnet-noin_l1_x4" > "$runs.pretrain.log" 2>&1
python3 train_srgan.py --phase gan --generator "$runs/srresnet-noin_l1_x4/last.pth" --epochs 2 --batch-size 32 --lr 1e-4 \
  --d-lr 1e-4 --adv-weight 5e-3 --amp --channels-last --train "$plain" --eval "$watch" --out "$runs/srgan_x4" > "$runs.gan.log" 2>&1
machine=$(python3 -c "import torch; print(torch.cuda.get_device_name(0))")
python3 experiments/export_weights.py "$runs/srresnet-noin_l1_x4" --name srresnet_x4 --checkpoint last.pth --out-dir "$out" \
  --note "srresnet-noin (no InstanceNorm: the best SRResNet variant of the report's comparison). $epochs epochs of BSDS200 HR-100 patches augmented x8, batch 64, lr 5e-4 cosine, L1, bf16 autocast, channels-last, on one $machine; last epoch shipped (Set5 only watched training)."
python3 experiments/export_weights.py "$runs/srgan_x4" --name srgan_x4 --checkpoint last.pth --out-dir "$out" \
  --note "SRGAN from srresnet_x4: 2 epochs of BSDS200 patches, batch 32, G and D lr 1e-4, L1 content + 5e-3 adversarial (5x Ledig et al.'s 1e-3: without VGG19 weights offline, the content loss is L1), on one $machine."
for f in "$runs"/*/metrics.csv; do echo "== $f"; cat "$f"; done
