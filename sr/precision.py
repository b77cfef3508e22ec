"""Precision and memory format, chosen by what the hardware runs natively.

bf16 autocast is fast only where the device computes bf16 in hardware: a CUDA GPU with
bf16 support, or a CPU with AMX or AVX512-BF16 that oneDNN will use. Elsewhere oneDNN
emulates it, and emulation is slower than fp32 (SRCNN x3 training on a 2-core AVX2 CPU:
181 samples/s in fp32, 17 in bf16; on a 2-core AMX Xeon: 430 and 1,270; see docs/speed.md).
So ``--amp`` defaults to "where native", and ``--amp`` / ``--no-amp`` force either.

Channels-last (NHWC) is the CPU default on both CPU kinds: oneDNN's convolutions ran
faster in it for every model we measured, in fp32 and bf16 (bench/bench_train.py). On CUDA
it pays off with autocast, where cuDNN's tensor-core kernels want NHWC.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from sr.errors import UserError


def cpu_has_native_bf16() -> bool:
    """AMX-BF16 or AVX512-BF16 as PyTorch reports them, and oneDNN allowed to use them
    (``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN emulate, and then this is False)."""
    capabilities = getattr(torch.cpu, "get_capabilities", lambda: {})()  # torch >= 2.8
    hardware = bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    return hardware and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is a speed-up on ``device``, not an emulation."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.4 has no including_emulation
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


@dataclass(frozen=True)
class Precision:
    """How a run computes: ``dtype`` None means fp32; else the autocast dtype."""

    device_type: str
    dtype: torch.dtype | None
    channels_last: bool
    chosen_by: str = "flag"  # "hardware" when --amp was left to the default

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_grad_scaler(self) -> bool:
        return self.dtype == torch.float16  # fp16 gradients underflow without loss scaling

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        """E.g. "fp32 (default: no native bf16 here), channels-last"."""
        if self.chosen_by == "hardware":
            why = "default: native bf16 here" if self.enabled else "default: no native bf16 here"
        else:
            why = "forced by --amp" if self.enabled else "forced by --no-amp"
        compute = f"{self.name} autocast" if self.enabled else "fp32"
        return f"{compute} ({why}), {'channels-last' if self.channels_last else 'NCHW'}"

    def record(self) -> dict[str, object]:
        """What a run's args.json and checkpoints keep."""
        return {"precision": self.name, "channels_last": self.channels_last, "precision_chosen_by": self.chosen_by}


def choose_precision(device: torch.device, amp: bool | None, amp_dtype: str = "bf16",
                     channels_last: bool | None = None) -> Precision:
    """``amp`` None: bf16 autocast where ``device`` has it natively, fp32 elsewhere.

    ``amp_dtype`` "fp16" (CUDA only) applies when autocast is on.
    """
    chosen_by = "hardware" if amp is None else "flag"
    enabled = native_bf16(device) if amp is None else bool(amp)
    dtype = None
    if enabled:
        dtype = torch.float16 if amp_dtype == "fp16" else torch.bfloat16
        if dtype == torch.float16 and device.type != "cuda":
            raise UserError("--amp-dtype fp16 needs CUDA; on the CPU use bf16")
    if channels_last is None:
        channels_last = device.type == "cpu" or (device.type == "cuda" and enabled)
    return Precision(device.type, dtype, bool(channels_last), chosen_by)
