"""How many self-ensemble passes a photo model runs on a lossy file, chosen on validation.

    python -m experiments.passes_rule                      # real_srresnet_x4, then real_fsrcnn_x4
    python -m experiments.passes_rule --models real_fsrcnn_x4 --passes 1 2

Each pass is one flip or rotation of the input, turned back after (``sr.models.self_ensemble``):
N passes cost N times the time of one. On the 10 BSDS200-val photos (held out of every photo
model's training) and every field kind, the photo model runs as the enlarger would for that file
(blended toward its heavy anchor by the quality read) over 1, 2, 4 and 8 passes, and its output is
pulled toward bicubic by each detail (``experiments.detail_rule``, whose scoring this shares). For
each number of passes the detail is chosen by detail_rule's rule (the highest mean gain over the
lossy kinds harming at most the bound on each). The passes: those with the highest mean gain at
their detail, among at most ``MAX_PASSES``: a photo, the files most people enlarge, may take at most
twice the time of a clean image. More passes are scored too, to show what they would buy.
Writes experiments/heavy/passes_<model>.json. Test sets are not read.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from experiments.detail_rule import BOUND, LOSSLESS, choose, save_result, score_details
from sr.data.field import FIELD_KINDS, HEAVY_KINDS
from sr.models.self_ensemble import PASSES

MAX_PASSES = 2  # the time a lossy photo may take, in single passes: a choice of cost, made before measuring


def lossy_gain(scores: dict, detail: str) -> float:
    return float(np.mean([scores[k][detail][0] for k in scores if k not in LOSSLESS]))


def choose_passes(by_passes: dict[int, dict]) -> int:
    """by_passes: passes -> {"detail": chosen, "gain": mean lossy gain at it}. The passes up to
    MAX_PASSES with the highest gain (the fewer on a tie)."""
    return max(sorted(p for p in by_passes if p <= MAX_PASSES), key=lambda p: by_passes[p]["gain"])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(BOUND), choices=list(BOUND))
    p.add_argument("--passes", nargs="+", type=int, default=list(PASSES), choices=PASSES)
    p.add_argument("--details", nargs="+", type=float, default=[1.0, 0.9, 0.8, 0.7])
    p.add_argument("--kinds", nargs="+", default=[*FIELD_KINDS, *HEAVY_KINDS])
    args = p.parse_args(argv)
    torch.manual_seed(0)
    results = {}
    for model in args.models:
        by_passes = {}
        for passes in sorted(args.passes):
            scores = score_details(model, args.details, args.kinds, passes)
            detail = choose(scores, BOUND[model])
            by_passes[passes] = {"detail": float(detail), "gain": lossy_gain(scores, detail), "scores": scores}
            print(f"{model} {passes} passes: detail {detail}, mean gain over the lossy kinds "
                  f"{by_passes[passes]['gain']:+.3f} dB", flush=True)
        chosen = choose_passes(by_passes)
        results[model] = {"chosen": chosen, "detail": by_passes[chosen]["detail"], "max_passes": MAX_PASSES, "bound": BOUND[model],
                          "by_passes": {str(k): v for k, v in by_passes.items()}}
        print(f"{model}: {chosen} passes, detail {by_passes[chosen]['detail']:g} (the highest mean gain over the lossy "
              f"kinds among at most {MAX_PASSES} passes)", flush=True)
        save_result("passes", model, results[model])
    return results


if __name__ == "__main__":
    main()
