"""The experiment report's comparisons, as runs of this project's training scripts.

Each ``Run`` holds the flags it trains with, the data files it reads, and the report's own
per-epoch figures to compare with; ``experiments.run`` trains them and writes the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    name: str
    group: str
    script: str  # train_srcnn | train_srgan
    argv: tuple[str, ...]
    epochs: int
    report_curve: tuple[float, ...] = ()  # the report's "eval psnr" after each epoch
    needs: tuple[str, ...] = ()  # runs that must finish first
    data: tuple = field(default=())  # (scale, layout, color) of the h5 files it reads

    @property
    def report_psnr(self) -> float | None:
        return self.report_curve[-1] if self.report_curve else None


def _srcnn(group, arch, loss, scale, epochs, report=()) -> Run:
    return Run(f"{arch}_{loss}_x{scale}", group, "train_srcnn",
               ("--arch", arch, "--loss", loss, "--scale", str(scale), "--epochs", str(epochs)), epochs, report,
               data=(scale, "upsampled", "y"))


def _bsds(group, arch, loss, report) -> Run:
    # The report's SRResNet comparisons keep the SRCNN hyper-parameters ("同上"): batch 32.
    script = "train_srgan" if arch.startswith("srresnet") else "train_srcnn"
    argv = ("--arch", arch, "--loss", loss, "--scale", "4", "--color", "rgb", "--epochs", "3", "--batch-size", "32")
    if script == "train_srgan":
        argv = ("--phase", "pretrain") + argv
    return Run(f"{arch}_{loss}_x4", group, script, argv, 3, report, data=(4, "lr-hr", "rgb"))


# The report's per-epoch "eval psnr" lines, copied from its logs.
RUNS: list[Run] = [
    # SRCNN half: T91 patches (33 px, stride 14), Set5. The report's 21,888 samples/epoch are x2.
    _srcnn("srcnn-loss-x2", "srcnn", "mse", 2, 10, (31.18, 32.73, 33.44, 33.90, 34.18, 34.33, 34.42, 34.47, 34.49, 34.50)),
    _srcnn("srcnn-loss-x2", "srcnn", "l1", 2, 10, (32.93, 33.80, 34.18, 34.59, 34.73, 34.81, 34.87, 34.92, 34.94, 34.94)),
    _srcnn("fsrcnn-loss-x2", "fsrcnn", "mse", 2, 10, (16.52, 20.57, 22.78, 24.21, 25.17, 25.81, 26.23, 26.48, 26.61, 26.64)),
    _srcnn("fsrcnn-loss-x2", "fsrcnn", "l1", 2, 10, (25.23, 28.72, 30.44, 31.21, 31.74, 32.07, 32.28, 32.40, 32.49, 32.51)),
    _srcnn("fsrcnn-in-x2", "fsrcnn-in", "mse", 2, 5, (8.53, 9.34, 9.66, 9.94, 10.10)),
    _srcnn("fsrcnn-wide-x2", "fsrcnn-wide", "mse", 2, 5, (27.64, 29.45, 30.33, 30.77, 30.88)),
    _srcnn("fsrcnn-wide-x2", "fsrcnn-wide", "l1", 2, 5, (31.27, 32.83, 33.01, 33.72, 33.84)),
    # The same losses at x3, the scale of the usage line (no report figure).
    _srcnn("srcnn-loss-x3", "srcnn", "mse", 3, 10),
    _srcnn("srcnn-loss-x3", "srcnn", "l1", 3, 10),
    _srcnn("fsrcnn-loss-x3", "fsrcnn", "mse", 3, 10),
    _srcnn("fsrcnn-loss-x3", "fsrcnn", "l1", 3, 10),
    # Which FSRCNN to ship: the variants at the same settings (L1, 10 epochs, T91 x3, default patches).
    _srcnn("fsrcnn-variants-x3", "fsrcnn-wide", "l1", 3, 10),
    Run("fsrcnn-paper_l1_x3", "fsrcnn-variants-x3", "train_srcnn",
        ("--arch", "fsrcnn-paper", "--loss", "l1", "--scale", "3", "--epochs", "10"), 10, data=(3, "lr-hr", "y")),
    # SRGAN half: BSDS200 -> BSDS100, x4, HR 100 / LR 25 patches, 3 epochs.
    _bsds("srresnet-x4", "srresnet", "mse", (16.67, 18.51, 19.04)),
    _bsds("srresnet-x4", "srresnet", "l1", (19.62, 21.36, 21.90)),
    _bsds("fsrcnn-paper-x4", "fsrcnn-paper", "mse", (15.12, 17.20, 17.57)),
    _bsds("fsrcnn-paper-x4", "fsrcnn-paper", "l1", (17.92, 18.78, 19.16)),
    _bsds("srresnet-noin-x4", "srresnet-noin", "mse", (5.06, 5.07, 5.07)),
    _bsds("srresnet-noin-x4", "srresnet-noin", "l1", (5.30, 5.55, 5.66)),
    _bsds("srresnet-tailin-x4", "srresnet-tailin", "mse", (18.90, 20.53, 20.94)),
    _bsds("srresnet-tailin-x4", "srresnet-tailin", "l1", (21.05, 22.22, 22.63)),
    # SRGAN on top of the L1 SRResNet above (report: batch 128, adversarial weight 1e-3).
    Run("srgan_srresnet_x4", "srgan-x4", "train_srgan",
        ("--phase", "gan", "--generator", "experiments/runs/srresnet_l1_x4/best.pth", "--epochs", "1",
         "--batch-size", "128"), 1, (23.8192,), needs=("srresnet_l1_x4",), data=(4, "lr-hr", "rgb")),
]
GROUPS = list(dict.fromkeys(r.group for r in RUNS))
# Runs of one group that another group's plot shows too.
SHOWN_ALSO = {"fsrcnn-variants-x3": ("fsrcnn_l1_x3",)}
REPORT_SRGAN_PRETRAIN = (23.7909, 0.7621)  # the report's pretrained generator, before the GAN phase
REPORT_SRGAN = (23.8192, 0.7632)
# Plain bicubic on each group's eval set under the standard protocol (the SPEC's table).
BICUBIC = {2: ("Set5", 33.68), 3: ("Set5", 30.40), 4: ("BSDS100", 25.96)}
