"""A run's configuration: the flags, a resumed run's settings and the defaults, settled once.

    args = parse_flags(build_parser, argv)       # argparse, plus which flags were given
    cfg = RunConfig.from_args(args, ctx, resume)  # frozen: nothing writes to it afterwards

Which settings define a run (``SETTINGS``) and which are files (``PATHS``) is declared here,
beside the flags, and read from here by the resume, ``args.json`` and the recipes of
``experiments/export_weights.py``. ``train_srgan.py`` adds its own in ``sr.training.gan``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from sr import distributed
from sr.checkpoint import load_checkpoint
from sr.cli import add_device, add_scale, decay, non_negative_int, percent, positive_float, positive_int
from sr.data.field import check_kind
from sr.data.h5 import DEFAULT_SETS, default_h5_path
from sr.data.sets import portable
from sr.errors import UserError
from sr.losses import CONTENT_LOSSES
from sr.models import COLORS, MODELS
from sr.precision import Precision, choose_precision
from sr.data.degradation_settings import DegradationSettings, add_degradation_args, settings_from_args


def add_training_args(p: argparse.ArgumentParser, *, arch: str | None, loss: str, scale: int | None, epochs: int,
                      batch_size: int, lr: float, out: str, unset: str = "") -> None:
    """The flags every training script has, in groups; ``arch``/``scale`` None: decided later (``unset`` says how)."""
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=list(MODELS), default=arch, help=f"model (default {arch or unset})")
    g.add_argument("--loss", choices=list(CONTENT_LOSSES), default=loss, help=f"content loss (default {loss})")
    add_scale(g, default=scale, help=f"upscaling factor, an integer >= 2 (default {scale or unset})")
    g.add_argument("--color", choices=list(COLORS), help="y or rgb (default: the model's: y for the SRCNN family, rgb for SRResNet)")

    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=positive_int, default=epochs, help=f"passes over the training patches (default {epochs})")
    g.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"global batch: under torchrun it is split evenly across processes (default {batch_size})")
    g.add_argument("--lr", type=positive_float, default=lr, help=f"Adam learning rate, cosine-annealed to 0 over the run (default {lr:g})")
    g.add_argument("--last-layer-lr", type=positive_float, default=1.0, metavar="F",
                   help="learning rate of the last layer (FSRCNN's deconvolution, SRCNN's reconstruction) as a multiple "
                        "of --lr; the SRCNN and FSRCNN papers use 0.1 (default 1)")
    g.add_argument("--ema", type=decay, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights, updated every step with this decay "
                        "(e.g. 0.999, as BasicSR's ema_decay); it is what is evaluated, chosen as best.pth and "
                        "exported, the trained weights are kept beside it for resuming (default 0: off)")
    g.add_argument("--seed", type=non_negative_int, default=0, help="initialisation and batch order (default 0)")

    g = p.add_argument_group("data")
    g.add_argument("--train", type=Path, help="training patches from prepare_h5.py (default: its output for these settings)")
    g.add_argument("--eval", type=Path, help="evaluation images from prepare_h5.py (default: its output for these settings)")
    g.add_argument("--load", choices=("auto", "memory", "lazy"), default="auto",
                   help="read the patch file into memory, or batch by batch from disk (auto: memory if it fits in half the free RAM)")
    g.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes (default 0: the "
                   "patches are in memory; give 2+ when they are read lazily from disk)")

    g = p.add_argument_group("run folder")
    g.add_argument("--out", type=Path, help=f"run folder (default: {out})")
    g.add_argument("--resume", type=Path, help="continue the run saved in this checkpoint (its settings are kept)")
    g.add_argument("--init", type=Path, help="start from this checkpoint's weights (same model, any scale whose weights "
                   "have the same shapes, e.g. an x3 SRCNN or FSRCNN for x2); optimizer and schedule start fresh")

    g = p.add_argument_group("hardware")
    add_device(g, "bf16 autocast (default: where the device computes bf16 natively: a CUDA GPU with bf16, a CPU "
                  "with AMX or AVX512-BF16; fp32 elsewhere, where emulated bf16 is slower). --amp / --no-amp force it")
    g.add_argument("--amp-dtype", choices=("bf16", "fp16"), default="bf16", help="fp16 uses a GradScaler; CUDA only")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on for the CPU, where oneDNN convolutions run faster in it, "
                        "and on CUDA with autocast)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model(s)")

    g = p.add_argument_group("photos: training and choosing for real files")
    g.add_argument("--degrade", action="store_true",
                   help="train for real photos: degrade every HR patch on the fly (blur, resize, noise, JPEG; the "
                        "--degrade-* flags below) instead of reading the file's clean LR; needs an lr-hr RGB patch file")
    g.add_argument("--eval-jpeg", type=percent, metavar="Q",
                   help="score the evaluation images with their LR saved as JPEG at quality Q, as eval.py --jpeg Q "
                        "does, so that best.pth is chosen for photos (default: the clean LR)")
    g.add_argument("--eval-degrade", type=field_kind, nargs="+", metavar="KIND",
                   help="score the evaluation images once per field degradation (eval.py --degrade KIND: clean, jpeg:Q, "
                        "webp:Q, resized, resaved, noisy, two saves as jpeg:Q+webp:Q) and choose best.pth on the mean, so "
                        "a photo model is chosen for every kind of file (default: the clean LR)")
    add_degradation_args(p)


def field_kind(text: str) -> str:
    """An argparse ``type``: a degradation of ``sr.data.field``."""
    try:
        return check_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_flags(build_parser: Callable[[], argparse.ArgumentParser], argv: list[str] | None) -> argparse.Namespace:
    """``build_parser().parse_args(argv)``, with ``given``: the settings named on the command line.

    A resumed run refuses only a flag that was given and contradicts it; a flag left at its
    default says nothing. (argparse fills in a default only where the namespace has no value
    yet: parsed into one holding a marker everywhere, what replaced a marker was typed.)
    """
    args = build_parser().parse_args(argv)
    unset = object()
    typed = build_parser().parse_args(argv, namespace=argparse.Namespace(**{key: unset for key in vars(args)}))
    args.given = frozenset(key for key, value in vars(typed).items() if value is not unset)
    return args


def load_resumable(path: Path, script: str) -> dict[str, Any]:
    """A checkpoint that ``script`` can continue (weights-only files cannot be resumed)."""
    state = load_checkpoint(path)
    if "optimizer" not in state or "args" not in state:
        raise UserError(f"{path}: holds weights only, not a run to resume")
    if state["args"].get("script") != script:
        raise UserError(f"{path}: is a run of {state['args'].get('script')}.py, not {script}.py")
    return state


def _as_flag(key: str, value: Any) -> str:
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"--no-{key.replace('_', '-')}"
    return f"{flag} {value}"


def _same(key: str, given: Any, saved: Any, paths: tuple[str, ...]) -> bool:
    if key in paths and given is not None and saved is not None:
        return os.path.abspath(given) == os.path.abspath(saved)
    return given == saved


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a run of ``script`` is set to, settled before any model or data exists."""

    # Settings that define a run, in the order a recipe's command line gives them: a resumed
    # run takes them from its checkpoint and refuses a flag that contradicts one. ``amp`` is
    # stored resolved (True/False), so a resumed run keeps its precision on any hardware.
    SETTINGS: ClassVar[tuple[str, ...]] = ("arch", "loss", "scale", "color", "epochs", "batch_size", "lr", "train", "eval",
                                           "init", "seed", "amp", "amp_dtype", "degradation", "eval_jpeg", "last_layer_lr", "ema", "eval_degrade")
    # Settings that are files: args.json records them relative to the working folder when inside it.
    PATHS: ClassVar[tuple[str, ...]] = ("train", "eval", "init", "out", "resume")

    script: str
    arch: str
    loss: str
    scale: int
    color: str
    epochs: int
    batch_size: int
    lr: float
    train: Path
    eval: Path
    init: Path | None
    seed: int
    amp_dtype: str
    out: Path
    resume: Path | None
    device: str
    compile: bool
    workers: int
    load: str
    machine: str  # where the run happens, for its records
    precision: Precision  # resolved from --amp, --amp-dtype, --channels-last and the device
    degradation: DegradationSettings | None  # --degrade: the on-the-fly degradation; None: the file's clean LR
    eval_jpeg: int | None = None  # --eval-jpeg: the JPEG quality of the evaluation LR; None: clean
    last_layer_lr: float = 1.0  # the last layer's learning rate as a multiple of lr
    ema: float = 0.0  # decay of the weights' moving average; 0: none
    eval_degrade: tuple[str, ...] | None = None  # --eval-degrade: field kinds the evaluation LR is made by, scores averaged

    @classmethod
    def from_args(cls, script: str, args: argparse.Namespace, ctx: distributed.Context, resume: dict[str, Any] | None = None,
                  *, out: str = "runs/{arch}_{loss}_x{scale}", fill: dict[str, Any] | None = None) -> RunConfig:
        """The flags, then the resumed run's settings, then the defaults, in that order.

        ``script``: e.g. "train_srcnn"; ``resume``: the checkpoint of ``args.resume``; ``out``:
        the default run folder, formatted with the settings; ``fill``: defaults for settings
        still unset (e.g. the GAN generator's architecture, scale and colour).
        """
        values = {k: v for k, v in vars(args).items() if k != "given" and not k.startswith("degrade")}
        given = getattr(args, "given", frozenset())
        values["degradation"] = settings_from_args(args).to_dict() if getattr(args, "degrade", False) else None
        if "degradation" not in given:  # --degrade and its --degrade-* flags, given or not
            given = given | ({"degradation"} if any(k.startswith("degrade") for k in given) else set())
        if resume:
            saved = resume["args"]
            for key in cls.SETTINGS:
                if key not in saved:
                    continue
                if key in given and not _same(key, values[key], saved[key], cls.PATHS):
                    raise UserError(f"{_as_flag(key, values[key])} differs from the resumed run's {saved[key]}; "
                                    "a resumed run keeps its settings")
                values[key] = Path(saved[key]) if key in cls.PATHS and saved[key] is not None else saved[key]
            values["out"] = values["out"] or args.resume.parent
        for key, value in (fill or {}).items():
            if values.get(key) is None:
                values[key] = value

        spec = MODELS[values["arch"]]
        values["color"] = color = values["color"] or spec.color
        train_set, eval_set = DEFAULT_SETS[color]
        values["train"] = Path(values["train"] or default_h5_path(train_set, values["scale"], spec.layout, color))
        values["eval"] = Path(values["eval"] or default_h5_path(eval_set, values["scale"], spec.layout, color))
        values["out"] = Path(values["out"] or out.format(**values))
        # amp None: the hardware decides. A resumed run has its resolved amp (old checkpoints: True,
        # the default then, so they keep bf16).
        precision = choose_precision(ctx.device, values["amp"], values["amp_dtype"], values["channels_last"])
        if resume and "amp" in resume["args"]:
            precision = replace(precision, chosen_by="resumed")
        if values["degradation"] is not None:
            values["degradation"] = DegradationSettings.from_dict(values["degradation"])
        values.update(script=script, machine=distributed.describe_machine(ctx), precision=precision)
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    @property
    def layout(self) -> str:
        return MODELS[self.arch].layout

    def record(self) -> dict[str, Any]:
        """The settings as args.json and the checkpoints keep them (JSON types)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "precision":
                continue
            if f.name == "degradation":
                value = value.to_dict() if value is not None else None
            out[f.name] = portable(value) if f.name in self.PATHS and value is not None else value
        return {**out, "amp": self.precision.enabled, "channels_last": self.precision.channels_last, **self.precision.record()}

    def describe_precision(self) -> str:
        """The precision for the run's first line, e.g. "fp32 (default: no native bf16 here), channels-last"."""
        p = self.precision
        if p.chosen_by != "resumed":
            return p.describe()
        compute = f"{p.name} autocast" if p.enabled else "fp32"
        return f"{compute} (kept from the resumed run), {'channels-last' if p.channels_last else 'NCHW'}"
