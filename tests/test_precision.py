"""The precision a run gets by default follows the hardware, mocked both ways."""

import pytest
import torch

import sr.precision
from sr.errors import UserError
from sr.precision import choose_precision, native_bf16

CPU = torch.device("cpu")


@pytest.fixture
def amx_cpu(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True, "avx512_bf16": True, "avx2": True})
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)


@pytest.fixture
def avx2_cpu(monkeypatch):
    # An AMD EPYC (Zen 3): AVX2 only; oneDNN would emulate bf16.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": False, "avx2": True})
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)


def test_a_cpu_with_native_bf16_gets_bf16_autocast_by_default(amx_cpu):
    p = choose_precision(CPU, amp=None)
    assert native_bf16(CPU)
    assert (p.name, p.enabled, p.channels_last, p.chosen_by) == ("bf16", True, True, "hardware")
    assert p.describe() == "bf16 autocast (default: native bf16 here), channels-last"


def test_an_avx2_cpu_gets_fp32_by_default(avx2_cpu):
    p = choose_precision(CPU, amp=None)
    assert not native_bf16(CPU)
    assert (p.name, p.enabled, p.channels_last) == ("fp32", False, True)
    assert p.describe() == "fp32 (default: no native bf16 here), channels-last"
    assert p.record() == {"precision": "fp32", "channels_last": True, "precision_chosen_by": "hardware"}


def test_avx512_without_bf16_instructions_is_not_native(monkeypatch):
    # oneDNN "supports" bf16 on plain AVX-512 by emulating it: that is no reason to use it.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": False, "avx512_f": True})
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert not native_bf16(CPU)


def test_flags_force_either_way(amx_cpu, monkeypatch):
    assert choose_precision(CPU, amp=False).name == "fp32"
    assert choose_precision(CPU, amp=False).describe().startswith("fp32 (forced by --no-amp)")
    monkeypatch.setattr(sr.precision, "cpu_has_native_bf16", lambda: False)
    forced = choose_precision(CPU, amp=True)
    assert forced.name == "bf16" and forced.chosen_by == "flag"
    assert choose_precision(CPU, amp=True, channels_last=False).channels_last is False


def test_fp16_needs_cuda():
    with pytest.raises(UserError, match="fp16 needs CUDA"):
        choose_precision(CPU, amp=True, amp_dtype="fp16")


def test_cuda_follows_the_device_bf16_support(monkeypatch):
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    p = choose_precision(cuda, amp=None)
    assert (p.name, p.channels_last) == ("bf16", True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    p = choose_precision(cuda, amp=None)
    assert (p.name, p.channels_last) == ("fp32", False)


def test_bf16_capabilities_without_onednn_support_stay_fp32(monkeypatch):
    # The other half of the check: the CPU reports AMX / AVX512-BF16, but this oneDNN build will
    # not run bf16 kernels on it (an old library, or one built without them): fp32.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True, "avx512_bf16": True, "avx2": True})
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not native_bf16(CPU)
    assert choose_precision(CPU, amp=None).name == "fp32"
