#!/usr/bin/env bash
# Issue 22 point 5, the FSRCNN paper's own experiment: x4 and x2 started from x3 against from scratch, the same
# recipe and the same samples (so the same time on the same thread), each chosen on T91-val, then scored on
# Set5/Set14 (matlab protocol). The x3 model's own training is not counted: one x3 run serves every scale.
# One thread; resumable (rerun after a stop). Prints the table at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."; . .venv/bin/activate; export SR_DATA="${SR_DATA:-../shared/datasets}" OMP_NUM_THREADS="${THREADS:-1}"
for s in 4 2; do
  p=$((11 * s)); st=$((5 * s))
  [ -f data/h5/T91_x${s}_lr-hr_y_aug5.h5 ] || python prepare_h5.py --scale $s --layout lr-hr --color y --images T91 --val-images 5 \
    --patch-size $p --stride $st --augment --rescale 1 0.9 0.8 0.7 0.6 --output data/h5/T91_x${s}_lr-hr_y_aug5.h5 --eval-output data/h5/T91-val_x${s}_lr-hr_y.h5
  epochs=$([ $s = 4 ] && echo "${EPOCHS4:-4}" || echo "${EPOCHS2:-1}")
  for start in scratch x3; do
    out=runs/i22/transfer_x${s}_$start
    [ -f $out/done ] && continue
    python train_srcnn.py --arch fsrcnn-paper --loss l1 --scale $s --color y --epochs $epochs --batch-size 32 --lr 5e-4 --ema 0.999 --no-amp \
      --train data/h5/T91_x${s}_lr-hr_y_aug5.h5 --eval data/h5/T91-val_x${s}_lr-hr_y.h5 --seed 8 \
      $( [ $start = x3 ] && echo --init weights/fsrcnn_x3.safetensors ) --out $out $( [ -f $out/last.pth ] && echo --resume $out/last.pth ) &&
      touch $out/done
  done
done
for run in runs/i22/transfer_x*; do
  for set in Set5 Set14; do
    python eval.py --weights $run/best.pth --dataset $set --protocol matlab --json $run/$set.json > /dev/null
  done
done
python - <<'PY'
import csv, json
from pathlib import Path
print("| scale | start | epochs | minutes | T91-val by epoch | Set5 | Set14 |\n|---|---|---|---|---|---|---|")
for run in sorted(Path("runs/i22").glob("transfer_x*")):
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    score = {s: json.loads((run / f"{s}.json").read_text())["psnr"] for s in ("Set5", "Set14")}
    scale, start = run.name.split("_")[1:]
    minutes = sum(float(r["seconds"]) for r in rows) / 60
    by_epoch = ", ".join("%.3f" % float(r["psnr"]) for r in rows)
    print(f"| {scale} | {'from x3' if start == 'x3' else 'scratch'} | {len(rows)} | {minutes:.1f} | {by_epoch} | "
          f"{score['Set5']:.3f} | {score['Set14']:.3f} |")
PY
