"""Score checkpoints on BSDS200-val once per field kind: what the photo models are chosen on.

    python -m experiments.val_kinds real_fsrcnn_x4 runs/heavy/real_fsrcnn_x4/best.pth
    python -m experiments.val_kinds real_srresnet_x4 --blend srresnet_x4 real_srresnet_x4 0.5 0.75

The 10 photos held out of every photo model's training (data/h5/BSDS200-val_x4_lr-hr_*.h5, made by
experiments/cpu_runs/heavy_photo.sh), each kind's LR made by ``sr.data.field``, scored through
training's own ``evaluate`` (fp32, Y PSNR): the numbers a run's metrics.csv averages. Test sets are
not read. ``--blend CLEAN PHOTO S...`` adds ``eval.py --denoise S`` blends of two checkpoints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.data.degradation import model_input
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, check_kind, field_degrade
from sr.data.h5 import load_eval_set
from sr.models import MODELS
from sr.training.loop import evaluate
from sr.weights import blended_checkpoint, resolve_weights

SCALE = 4


def val_file(color: str) -> Path:
    return Path(f"data/h5/BSDS200-val_x{SCALE}_lr-hr_{color}.h5")


def score_kinds(state: dict, kinds: list[str]) -> dict[str, float]:
    """Mean Y PSNR on BSDS200-val for each kind, for one checkpoint."""
    model = model_from_checkpoint(state)
    spec = MODELS[state["arch"]]
    _, images = load_eval_set(val_file(state["color"]))
    out = {}
    for kind in kinds:
        degraded = [im._replace(inputs=model_input(field_degrade(im.hr, SCALE, kind), SCALE, spec.layout, state["color"]))
                    for im in images]
        out[kind] = evaluate(model, degraded, SCALE, spec.input_scale(SCALE), torch.device("cpu"))["psnr"]
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="*", help="shipped names or checkpoint files")
    p.add_argument("--blend", nargs="+", metavar="X", help="CLEAN PHOTO S [S ...]: --denoise blends of two checkpoints")
    p.add_argument("--kinds", nargs="+", type=check_kind, default=[*FIELD_KINDS, *HEAVY_KINDS])
    p.add_argument("--json", type=Path, help="write the scores here too")
    args = p.parse_args(argv)
    states = {w: load_checkpoint(resolve_weights(w)) for w in args.weights}
    if args.blend:
        clean, photo = (load_checkpoint(resolve_weights(w)) for w in args.blend[:2])
        for s in args.blend[2:]:
            states[f"blend {s}"] = blended_checkpoint(clean, photo, float(s))
    table = {}
    print("model".ljust(36) + "".join(k[:15].rjust(16) for k in args.kinds) + "mean".rjust(10))
    for name, state in states.items():
        table[name] = row = score_kinds(state, args.kinds)
        mean = sum(row.values()) / len(row)
        print(name[-36:].ljust(36) + "".join(f"{row[k]:16.3f}" for k in args.kinds) + f"{mean:10.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return table


if __name__ == "__main__":
    main()
