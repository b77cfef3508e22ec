"""Choose the heavy-compression rule on BSDS200-val: how far a photo model is blended toward its heavy anchor
for the quality read from a file (``sr.weights.heavy_strength``).

    python -m experiments.heavy_rule real_srresnet_x4 runs/heavy/heavy_srresnet_x4/best.pth
    python -m experiments.heavy_rule real_fsrcnn_x4 runs/heavy/heavy_fsrcnn_x4/best.pth --json docs/heavy_rule_fast.json

Each of the 10 held-out photos is saved as every field kind, the mild and the heavy (the file a user
would have), its quality read back as the picker reads it, and enlarged by the photo model blended
toward the anchor at strengths 0, 0.25, ..., 1 (Y PSNR through training's own ``evaluate``, fp32).
Every ramp (strength 0 at quality FROM and above, 1 at FULL and below, linear between) is then
scored by the mean over all kinds of the PSNR its strengths give, rounded to the nearest strength
measured; the best ramp is printed with the per-kind table. ``--detail D`` pulls every output
toward bicubic as the enlarger does for a lossy file (``sr.weights.Anchor.detail``), so the ramp
is chosen for what runs, and ``--passes N`` runs it over the enlarger's self-ensemble passes
(``sr.weights.Anchor.passes``). Test sets are not read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.data.degradation import model_input
from sr.data.field import FIELD_KINDS, HEAVY_KINDS, check_kind, field_degrade, save_field_lr
from sr.data.h5 import load_eval_set
from sr.file_history import read_history
from sr.models import MODELS
from sr.models.self_ensemble import PASSES, SelfEnsemble
from sr.protocol import predict, score, toward_bicubic
from sr.weights import BLOCKY, blended_checkpoint, resolve_weights
from experiments.val_kinds import SCALE, val_file

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
FROM, FULL = range(40, 101, 5), range(10, 61, 5)


def read_quality(path: Path) -> int | None:
    """The quality the picker acts on: a lossy file's, or a lossless file's with a block grid."""
    history = read_history(path)
    return history.heaviest if history.lossy or (history.blockiness or 0) >= BLOCKY else None


def ramp(quality: int | None, start: int, full: int) -> float:
    if quality is None:
        return 0.0
    return min(1.0, max(0.0, (start - quality) / (start - full)))


@torch.no_grad()
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("photo", help="the photo model (shipped name or checkpoint)")
    p.add_argument("anchor", help="its heavy anchor (checkpoint)")
    p.add_argument("--kinds", nargs="+", type=check_kind, default=[*FIELD_KINDS, *HEAVY_KINDS])
    p.add_argument("--json", type=Path, help="write the per-image scores and the chosen ramp here")
    p.add_argument("--detail", type=float, default=1.0, help="share of the model's difference from bicubic kept")
    p.add_argument("--passes", type=int, default=1, choices=PASSES, help="self-ensemble passes, as the enlarger runs a lossy file")
    args = p.parse_args(argv)
    photo, anchor = (load_checkpoint(resolve_weights(w)) for w in (args.photo, args.anchor))
    models = {s: SelfEnsemble(model_from_checkpoint(blended_checkpoint(photo, anchor, s)), args.passes) for s in STRENGTHS}
    spec, color = MODELS[photo["arch"]], photo["color"]
    _, images = load_eval_set(val_file(color))
    work = Path(tempfile.mkdtemp(prefix="heavy_rule_"))
    psnr: dict[str, list[list[float]]] = {}  # kind -> image -> strength
    quality: dict[str, list[int | None]] = {}
    for kind in args.kinds:
        for i, im in enumerate(images):
            saved = save_field_lr(im.hr, SCALE, kind, work / f"{i}_{kind.replace(':', '').replace('+', '_')}")
            quality.setdefault(kind, []).append(read_quality(saved))
            lr = field_degrade(im.hr, SCALE, kind)
            inputs = model_input(lr, SCALE, spec.layout, color)
            psnr.setdefault(kind, []).append([score(toward_bicubic(predict(models[s], inputs, spec.input_scale(SCALE),
                                                                           torch.device("cpu")), lr, SCALE, args.detail),
                                                    im.hr, SCALE)["psnr"] for s in STRENGTHS])
        table = np.array(psnr[kind])
        print(f"{kind:18s} read q {sorted(set(quality[kind]), key=lambda q: (q is None, q))}  "
              + "  ".join(f"s={s:g}: {v:.3f}" for s, v in zip(STRENGTHS, table.mean(axis=0))), flush=True)

    def mean_over_kinds(start: int, full: int) -> float:
        per_kind = []
        for kind in args.kinds:
            picks = [int(np.abs(np.array(STRENGTHS) - ramp(q, start, full)).argmin()) for q in quality[kind]]
            per_kind.append(np.mean([row[k] for row, k in zip(psnr[kind], picks)]))
        return float(np.mean(per_kind))

    rules = {(start, full): mean_over_kinds(start, full) for start in FROM for full in FULL if full < start}
    best = max(rules, key=rules.get)
    none = float(np.mean([np.mean([row[0] for row in psnr[k]]) for k in args.kinds]))
    print(f"no blend: {none:.4f}; best ramp: from {best[0]} to {best[1]}: {rules[best]:.4f} (mean Y PSNR over the kinds)")
    if args.json:
        args.json.write_text(json.dumps({"photo": args.photo, "anchor": args.anchor, "detail": args.detail, "passes": args.passes,
                                         "strengths": STRENGTHS,
                                         "psnr": psnr, "quality": quality, "no_blend": none,
                                         "best": {"from": best[0], "full": best[1], "psnr": rules[best]}}, indent=1))
    return {"best": best, "rules": rules}


if __name__ == "__main__":
    main()
