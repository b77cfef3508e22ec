import json
import math
import os
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr.checkpoint import bare_module, is_checkpoint, load_checkpoint, save_checkpoint, save_weights
from sr.checkpoint_fields import MAX_DISCRIMINATOR_PARAMETERS, MAX_PARAMETERS, validate_checkpoint
from sr.errors import UserError
from sr.models import MODELS, Discriminator, create_model
from sr.weights import shipped_file, shipped_names
from tests.conftest import ROOT, weights_only_checkpoint


def _state():
    return weights_only_checkpoint("fsrcnn", 3)


def test_a_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, dict(_state(), epoch=1))

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, dict(_state(), epoch=2))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # no temporary file left behind


def test_truncated_foreign_and_garbage_files_are_refused(tmp_path):
    good = tmp_path / "good.pth"
    save_checkpoint(good, _state())
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")
    torch.save(create_model("srcnn", 3)[0].state_dict(), tmp_path / "bare.pth")
    with pytest.raises(UserError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "bare.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00\x01junk" * 10)
    with pytest.raises(UserError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pth")


class Anything:
    pass


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    # Issue 32: the refusal said "truncated or corrupt?", of a file that is neither.
    torch.save({"format": "sr-checkpoint-v1", "payload": Anything()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match=r"evil.pth: holds a Python object other than tensors and plain values "
                                        r"\([\w.]*Anything\); not loaded, none of its code ran") as info:
        load_checkpoint(tmp_path / "evil.pth")
    assert "truncated" not in str(info.value) and "\n" not in str(info.value)


def test_bare_module_unwraps_compile():
    model, _ = create_model("srcnn", 3)
    compiled = torch.compile(model)
    assert bare_module(compiled) is model
    assert list(bare_module(compiled).state_dict()) == list(model.state_dict())  # no _orig_mod. prefix


def test_a_checkpoint_gets_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "best.pth", _state())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "best.pth").stat().st_mode) == 0o644  # not mkstemp's 0600


# --- Validation of a checkpoint's contents (issue 13.1). Every bad case starts from a shipped
# checkpoint, changes one thing, is saved the normal way, and must be refused in one line
# naming the field, before any network is built.



def _shipped(name: str) -> dict:
    """A shipped checkpoint as saved, without the format tag that save_checkpoint adds."""
    state = load_checkpoint(shipped_file(name))
    del state["format"]
    return state


def _kwargs(**change):
    def edit(state):
        state["model_kwargs"].update(change)
    return edit


def _field(key, value):
    def edit(state):
        state[key] = value
    return edit


def _tensor(name, value=None, drop=False):
    def edit(state):
        if drop:
            del state["model"][name]
        else:
            state["model"][name] = value(state["model"].get(name)) if callable(value) else value
    return edit


def _without(key):
    def edit(state):
        del state["model_kwargs"][key]
    return edit


BAD = {
    # The table: each of these used to end in a traceback, or in 9.5 GB of allocation.
    "layout weird": ("srresnet_x4", _field("layout", "weird"), r"field 'layout' is 'weird'; it must be one of 'upsampled', 'lr-hr'"),
    "scale not a number": ("srresnet_x4", _field("scale", "x"), r"field 'scale' is 'x'; it must be an integer >= 2"),
    "color a number": ("srresnet_x4", _field("color", 5), r"field 'color' is 5; it must be one of 'y', 'rgb'"),
    "unknown kwarg": ("srresnet_x4", _kwargs(foo=1), r"field 'model_kwargs' has 'foo', which SRResNet does not take"),
    "features 2500": ("srresnet_x4", _kwargs(features=2500), r"field 'model_kwargs' .* give SRResNet 2,307,470,003 parameters, over the limit of 50,000,000"),
    # Tensors against the network the fields describe.
    "wrong shape": ("fsrcnn_x3", _tensor("deconv.weight", torch.zeros(56, 1, 7, 7)), r"field 'model' tensor 'deconv.weight' has shape \(56, 1, 7, 7\); fsrcnn-paper .* needs \(56, 1, 9, 9\)"),
    "missing tensor": ("fsrcnn_x3", _tensor("deconv.bias", drop=True), r"field 'model' lacks tensor 'deconv.bias'"),
    "extra tensor": ("fsrcnn_x3", _tensor("extra.weight", torch.zeros(3)), r"field 'model' has tensor 'extra.weight', which fsrcnn-paper .* does not have"),
    "int tensor": ("fsrcnn_x3", _tensor("deconv.weight", lambda t: t.long()), r"field 'model' tensor 'deconv.weight' is torch.int64; weights must be float32, float16 or bfloat16"),
    "nan tensor": ("fsrcnn_x3", _tensor("body.0.weight", lambda t: t.clone().index_fill_(0, torch.tensor([3]), math.nan)), r"field 'model' tensor 'body.0.weight' holds NaN or infinite values"),
    "inf tensor": ("srresnet_x4", _tensor("tail.bias", lambda t: torch.full_like(t, math.inf)), r"field 'model' tensor 'tail.bias' holds NaN"),
    "state_dict not a dict": ("fsrcnn_x3", _field("model", [1, 2]), r"field 'model' is a list, not a state_dict"),
    # model_kwargs against the constructor's signature and the other fields.
    "kwarg missing": ("fsrcnn_x3", _without("scale"), r"field 'model_kwargs' lacks 'scale' \(it must give d, s, m, channels, scale\)"),
    "kwarg bool for int": ("fsrcnn_x3", _kwargs(m=True), r"field 'model_kwargs.m' is True; FSRCNN needs an integer >= 0"),
    "kwarg negative": ("srresnet_x4", _kwargs(blocks=-1), r"field 'model_kwargs.blocks' is -1; SRResNet needs an integer >= 0"),
    "kwarg str for float": ("srresnet_x4", _kwargs(negative_slope="0.2"), r"field 'model_kwargs.negative_slope' is '0.2'; SRResNet needs a finite number"),
    "kwarg value the constructor refuses": ("srresnet_x4", _kwargs(norm="some"), r"field 'model_kwargs' .* do not build SRResNet \(norm must be one of"),
    "kwargs not a dict": ("fsrcnn_x3", _field("model_kwargs", [56, 12]), r"field 'model_kwargs' is a list, not a dict"),
    "channels vs color": ("fsrcnn_x3", _kwargs(channels=3), r"field 'model_kwargs.channels' is 3, but colour 'y' has 1"),
    "kwarg scale vs scale": ("fsrcnn_x3", _kwargs(scale=2), r"field 'model_kwargs.scale' is 2, but the checkpoint's scale is 3"),
    "srresnet scale 3": ("srresnet_x4", lambda s: (s.update(scale=3), s["model_kwargs"].update(scale=3)), r"field 'scale' is 3, which srresnet-noin cannot do \(SRResNet upsamples by powers of two"),
    "fsrcnn scale 11": ("fsrcnn_x3", lambda s: (s.update(scale=11), s["model_kwargs"].update(scale=11)), r"field 'scale' is 11, which fsrcnn-paper cannot do \(FSRCNN's 9x9 deconvolution enlarges by 1 to 10"),
    "scale 1": ("fsrcnn_x3", _field("scale", 1), r"field 'scale' is 1; it must be an integer >= 2"),
    "scale bool": ("fsrcnn_x3", _field("scale", True), r"field 'scale' is True"),
    "scale float": ("fsrcnn_x3", _field("scale", 3.0), r"field 'scale' is 3.0"),
    "layout not the arch's": ("srresnet_x4", _field("layout", "upsampled"), r"field 'layout' is 'upsampled', but srresnet-noin is an 'lr-hr' model"),
    "arch unknown": ("fsrcnn_x3", _field("arch", "edsr"), r"field 'arch' is 'edsr', not a known architecture"),
    "arch not a string": ("fsrcnn_x3", _field("arch", ["fsrcnn"]), r"field 'arch' is \['fsrcnn'\]"),
    # Training fields, as far as cheap.
    "epoch negative": ("fsrcnn_x3", _field("epoch", -1), r"field 'epoch' is -1; it must be an integer >= 0"),
    "step a string": ("fsrcnn_x3", _field("step", "3"), r"field 'step' is '3'"),
    "best_psnr nan": ("fsrcnn_x3", _field("best_psnr", math.nan), r"field 'best_psnr' is nan; it must be a number"),
    "optimizer not a dict": ("fsrcnn_x3", _field("optimizer", 1.0), r"field 'optimizer' is 1.0; it must be a dict"),
    # Fields against each other (issue 32, row 7): a resume rebuilt args.arch and failed loading the weights.
    "args.arch not the arch": ("fsrcnn_x3", _field("args", {"arch": "fsrcnn", "scale": 3, "color": "y"}),
                               r"field 'args.arch' is 'fsrcnn', but the checkpoint's arch is 'fsrcnn-paper'"),
    "args.scale not the scale": ("fsrcnn_x3", _field("args", {"arch": "fsrcnn-paper", "scale": 4}),
                                 r"field 'args.scale' is 4, but the checkpoint's scale is 3"),
    "trained_model not the model": ("fsrcnn_x3", lambda s: s.update(trained_model=create_model("srcnn", 3)[0].state_dict(), ema_updates=1),
                                    r"field 'trained_model' lacks tensor 'body.1.weight', which fsrcnn-paper"),
    "ema_updates negative": ("fsrcnn_x3", lambda s: s.update(trained_model=s["model"], ema_updates=-1),
                             r"field 'ema_updates' is -1; it must be an integer >= 0"),
}


# Weights as safetensors (issue 23) carry the same fields, as JSON strings in the metadata, so the
# same cases must be refused from them, but for those a safetensors file cannot hold: training
# fields, and a 'model' that is not a dict of tensors (save_weights could not write one).
WEIGHTS_ONLY = [case for case in BAD if case not in ("state_dict not a dict", "epoch negative", "step a string",
                                                      "best_psnr nan", "optimizer not a dict", "args.arch not the arch",
                                                      "args.scale not the scale", "trained_model not the model",
                                                      "ema_updates negative")]
WRITERS = {".pth": save_checkpoint, ".safetensors": save_weights}


@pytest.mark.parametrize("suffix,case", [(".pth", case) for case in BAD] + [(".safetensors", case) for case in WEIGHTS_ONLY])
def test_each_bad_field_is_refused_in_one_line_naming_it(tmp_path, suffix, case):
    name, edit, message = BAD[case]
    state = _shipped(name)
    edit(state)
    path = tmp_path / f"bad{suffix}"
    WRITERS[suffix](path, state)
    with pytest.raises(UserError, match=message) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: checkpoint field '")


@pytest.mark.parametrize("name", shipped_names())
def test_every_shipped_checkpoint_is_valid(name):
    assert load_checkpoint(shipped_file(name))["arch"] in MODELS


# --- Weights as safetensors (issue 23): the tensors and the file format, no pickle.


def test_weights_round_trip_through_safetensors_bit_for_bit_and_an_old_pth_still_loads(tmp_path):
    state = _shipped("srresnet_x4")
    save_weights(tmp_path / "w.safetensors", state)
    save_checkpoint(tmp_path / "old.pth", state)  # a .pth as shipped before safetensors
    new, old = load_checkpoint(tmp_path / "w.safetensors"), load_checkpoint(tmp_path / "old.pth")
    assert {k: new[k] for k in new if k != "model"} == {k: old[k] for k in old if k != "model"}
    assert new["model"].keys() == old["model"].keys()
    assert all(torch.equal(new["model"][k], old["model"][k]) and new["model"][k].dtype == old["model"][k].dtype
               for k in old["model"])
    assert is_checkpoint(tmp_path / "w.safetensors") and is_checkpoint(tmp_path / "old.pth")
    # The facts are JSON strings, readable by any safetensors tool.
    header = json.loads((tmp_path / "w.safetensors").read_bytes()[8:8 + struct.unpack("<Q", (tmp_path / "w.safetensors").read_bytes()[:8])[0]])
    assert json.loads(header["__metadata__"]["model_kwargs"]) == state["model_kwargs"]
    assert json.loads(header["__metadata__"]["arch"]) == "srresnet-noin"


def _raw_safetensors(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


SAFETENSORS_BAD = {
    "shorter than 8 bytes": (None, b"\x01\x02", r"shorter than its 8-byte header length"),
    "header longer than the file": (None, struct.pack("<Q", 1 << 40) + b"{}", r"declares a header of 1,099,511,627,776 bytes in a file of 10"),
    "header not JSON": (None, struct.pack("<Q", 3) + b"{{{", r"its header is not JSON"),
    "offsets outside the data": ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 33]}}, bytes(16), r"data_offsets \[0, 8589934592\] outside the file's 16 data bytes"),
    "shape and offsets disagree": ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, bytes(16), r"shape \[3\] of F32 does not take the 16 bytes"),
    "tensors overlap": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}},
                        bytes(16), r"overlap or leave gaps"),
    "unknown dtype": ({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16), r"no dtype this reader knows"),
    "metadata not strings": ({"__metadata__": {"format": 1}}, b"", r"__metadata__ is not a map of strings to strings"),
    "no format tag": ({"__metadata__": {"arch": '"fsrcnn"'}}, b"", r"not a checkpoint of this project \(no 'sr-checkpoint-v1' format tag"),
    "unknown metadata key": ({"__metadata__": {"format": '"sr-checkpoint-v1"', "run": "x"}}, b"", r"unknown key 'run'"),
    "metadata value not JSON": ({"__metadata__": {"format": '"sr-checkpoint-v1"', "arch": "fsrcnn"}}, b"", r"metadata 'arch' is not JSON"),
}


@pytest.mark.parametrize("case", list(SAFETENSORS_BAD))
def test_a_bad_safetensors_file_is_refused_in_one_line_before_its_data_is_read(tmp_path, case):
    header, data, message = SAFETENSORS_BAD[case]
    path = tmp_path / "bad.safetensors"
    if header is None:
        path.write_bytes(data)
    else:
        _raw_safetensors(path, header, data)
    with pytest.raises(UserError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_half_precision_weights_and_training_fields_are_valid(tmp_path):
    state = _shipped("fsrcnn_x3")
    state["model"] = {k: v.to(torch.bfloat16 if "deconv" in k else torch.float16) for k, v in state["model"].items()}
    state.update(epoch=3, step=0, best_psnr=-math.inf, optimizer={}, scheduler={}, args={"script": "train_srcnn"})
    save_checkpoint(tmp_path / "half.pth", state)
    assert load_checkpoint(tmp_path / "half.pth")["epoch"] == 3


def _gan_state(patch=32):
    state = _shipped("srgan_x4")
    torch.manual_seed(0)
    d_kwargs = dict(channels=3, patch_size=patch)
    return dict(state, discriminator=Discriminator(**d_kwargs).state_dict(), discriminator_kwargs=d_kwargs)


def test_a_gan_checkpoints_discriminator_is_checked_the_same_way(tmp_path):
    save_checkpoint(tmp_path / "gan.pth", _gan_state())
    assert load_checkpoint(tmp_path / "gan.pth")["discriminator_kwargs"] == {"channels": 3, "patch_size": 32}
    cases = [
        (lambda s: s["discriminator_kwargs"].update(patch_size=96), r"field 'discriminator' tensor 'head.1.weight' has shape \(1024, 2048\); Discriminator .* needs \(1024, 18432\)"),
        (lambda s: s["discriminator_kwargs"].update(patch_size=4096), r"field 'discriminator_kwargs' .* give Discriminator 34,364,427,649 parameters, over the limit of 500,000,000 \(MAX_DISCRIMINATOR_PARAMETERS"),
        (lambda s: s["discriminator_kwargs"].update(channels=1), r"field 'discriminator_kwargs.channels' is 1, but colour 'rgb' has 3"),
        (lambda s: s["discriminator_kwargs"].pop("patch_size"), r"field 'discriminator_kwargs' lacks 'patch_size'"),
        (lambda s: s["discriminator"].update({"features.3.num_batches_tracked": torch.tensor(1.0)}), r"tensor 'features.3.num_batches_tracked' is torch.float32; Discriminator .* needs torch.int64"),
        (lambda s: s.pop("discriminator_kwargs"), r"lacks discriminator_kwargs"),
    ]
    for edit, message in cases:
        state = _gan_state()
        edit(state)
        save_checkpoint(tmp_path / "bad.pth", state)
        with pytest.raises(UserError, match=message):
            load_checkpoint(tmp_path / "bad.pth")


def test_the_limit_is_far_above_every_model_here():
    for name, spec in MODELS.items():
        for scale in (2, 4, 8):
            with torch.device("meta"):
                model = spec.cls(**dict(spec.kwargs, channels=3, **({"scale": scale} if spec.layout == "lr-hr" else {})))
            assert sum(p.numel() for p in model.parameters()) < MAX_PARAMETERS / 10
    with torch.device("meta"):  # x8's default patch: 200 px
        assert sum(p.numel() for p in Discriminator(patch_size=200).parameters()) < MAX_DISCRIMINATOR_PARAMETERS / 5


def test_validation_allocates_nothing_for_a_huge_network(tmp_path):
    state = _shipped("srresnet_x4")
    state["model_kwargs"]["features"] = 2500
    save_checkpoint(tmp_path / "huge.pth", state)
    state = torch.load(tmp_path / "huge.pth", weights_only=True)
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(UserError, match="over the limit"):
        validate_checkpoint(state, "huge.pth")
    assert tracemalloc.get_traced_memory()[1] < 10_000_000  # Python-side; the RSS check is below
    tracemalloc.stop()


# Runs the command and reports (seconds, exit code, peak RSS in bytes). A small launcher, because
# a child forked from the test run starts its ru_maxrss at the test run's own peak (Linux
# carries the pre-exec high-water mark over), which would hide what the child itself used.
_LAUNCHER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(time.perf_counter() - start, code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _run_measured(argv: list[str]) -> tuple[float, int, int, str]:
    """(seconds, exit code, peak RSS in bytes, stderr) of one child process."""
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, cwd=ROOT)
    elapsed, code, rss = done.stdout.split()
    return float(elapsed), int(code), int(rss), done.stderr


def test_eval_refuses_a_huge_network_in_one_line_fast_and_without_allocating_it(tmp_path):
    state = _shipped("srresnet_x4")
    state["model_kwargs"]["features"] = 2500  # 2.3 G parameters: 9.5 GB, if it were built
    save_checkpoint(tmp_path / "huge.pth", state)
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(tmp_path / "photo.png")
    eval_argv = [sys.executable, "eval.py", "--weights", str(tmp_path / "huge.pth"), "--image", str(tmp_path / "photo.png"),
                 "--upscale", "--output", str(tmp_path / "out.png"), "--device", "cpu"]
    tries = []
    for _ in range(3):  # a busy machine can slow either process by seconds; one fair pair suffices
        baseline = _run_measured([sys.executable, "-c", "import torch"])[0]
        elapsed, code, rss, stderr = _run_measured(eval_argv)
        assert code == 2, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        assert "field 'model_kwargs'" in lines[0] and "over the limit of 50,000,000" in lines[0]
        assert rss < 1.5e9, f"peak RSS {rss / 1e9:.2f} GB"
        tries.append((elapsed, baseline))
        print(f"eval refused in {elapsed:.2f} s (import torch {baseline:.2f} s), peak RSS {rss / 1e6:.0f} MB")
        if elapsed < baseline + 1.0:
            break
    else:
        pytest.fail(f"eval took longer than importing torch plus 1 s in every try: {tries}")
    assert not (tmp_path / "out.png").exists()


# --- Issue 21: every bound is checked before the work it limits (rows 1-4).

def _rewrite_archive(path: Path, edit_pickle=lambda data: data, big_record: tuple[int, int] | None = None) -> None:
    """Rewrite the checkpoint at ``path``: ``edit_pickle`` changes data.pkl's bytes; ``big_record``
    (size, new size) replaces the tensor record of that size with that many zero bytes, deflated
    (a few hundred KB on disk, however large it inflates)."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", compresslevel=1) as out:
        for name, data in entries:
            if name.endswith("data.pkl"):
                data = edit_pickle(data)
            if big_record and len(data) == big_record[0] and "/data/" in name:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with out.open(info, "w", force_zip64=True) as f:
                    for _ in range(big_record[1] >> 24):
                        f.write(bytes(1 << 24))
            else:
                out.writestr(name, data)


_MARK = 123457  # elements of a stand-in tensor: a number found nowhere else in the pickle


def _declare(elements: int):
    """A data.pkl edit: the stand-in tensor (and its storage) now declares ``elements`` floats."""
    return lambda data: data.replace(b"J" + struct.pack("<i", _MARK), b"J" + struct.pack("<i", elements))


def _with_hidden_tensor(path: Path, place, declared: int, stored: int) -> None:
    """fsrcnn_x3 with a tensor put in by ``place(state, tensor)`` that declares ``declared`` bytes
    and whose record inflates to ``stored`` bytes."""
    state = _shipped("fsrcnn_x3")
    place(state, torch.zeros(_MARK))
    save_checkpoint(path, state)
    _rewrite_archive(path, _declare(declared // 4), big_record=(4 * _MARK, stored))


def test_a_million_layers_are_refused_by_arithmetic_before_any_module_is_made(tmp_path, monkeypatch):
    # Row 1: fsrcnn_x3 with m = 10**6 built a million layer objects on the meta device (> 120 s,
    # 1.6 GB) before the parameter count was checked.
    made = []

    def counting_init(self, *args, **kwargs):
        made.append(type(self).__name__)
        assert len(made) < 500, "a module was built for each of the checkpoint's layers"
        real_init(self, *args, **kwargs)

    real_init = torch.nn.Module.__init__
    for m, message in ((10**6, r"give FSRCNN 1,320,007,529 parameters, over the limit of 50,000,000"),
                       (10**4, r"give FSRCNN 10,004 layers, over the limit of 256 \(MAX_LAYERS")):
        state = _shipped("fsrcnn_x3")
        state["model_kwargs"].update(m=m, s=1, d=1, mapping_kernel=1) if m == 10**4 else state["model_kwargs"].update(m=m)
        save_checkpoint(tmp_path / "deep.pth", state)
        made.clear()
        monkeypatch.setattr(torch.nn.Module, "__init__", counting_init)
        with pytest.raises(UserError, match=message):
            load_checkpoint(tmp_path / "deep.pth")
        monkeypatch.undo()


def test_a_network_size_is_worked_out_exactly_as_the_modules_would_have_it():
    from sr.models.counting import network_size

    cases = [(spec.cls, dict(spec.kwargs, channels=c, **({"scale": s} if spec.layout == "lr-hr" else {})))
             for spec in MODELS.values() for c in (1, 3) for s in (2, 3, 4, 8)]
    cases += [(Discriminator, dict(patch_size=p, features=f, batch_norm=b)) for p in (33, 96, 200) for f in (8, 64) for b in (True, False)]
    for cls, kwargs in cases:
        try:
            with torch.device("meta"):
                net = cls(**kwargs)
        except ValueError:  # SRResNet x3
            continue
        assert network_size(cls, kwargs).parameters == sum(p.numel() for p in net.parameters()), (cls.__name__, kwargs)


def test_a_deflated_gigabyte_under_an_unknown_key_is_refused_before_it_is_inflated(tmp_path):
    # Row 2: a 1 MB file whose zip holds a deflated 1 GB tensor under an extra top-level key was
    # accepted (torch.load inflated it first). 64 MB here keeps the test quick; the check reads
    # the zip's listing and the pickle, never the record, so the size does not matter to it.
    path = tmp_path / "hidden.pth"
    _with_hidden_tensor(path, lambda state, t: state.update(payload=t), declared=64 << 20, stored=64 << 20)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(UserError, match=r"unknown top-level key\(s\) 'payload'"):
        load_checkpoint(path)


def test_tensors_beyond_what_the_declared_network_needs_are_refused_before_they_are_read(tmp_path):
    inside_optimizer = lambda state, t: state.update(optimizer={"state": {0: {"exp_avg": t}}, "param_groups": []})
    path = tmp_path / "hidden.pth"
    _with_hidden_tensor(path, inside_optimizer, declared=64 << 20, stored=64 << 20)
    with pytest.raises(UserError, match=r"checkpoint tensors take 67,160,100 bytes, over the 1,355,992 that its networks' 12,809 parameters allow"):
        load_checkpoint(path)
    # A record that inflates to more than its tensor declares.
    _with_hidden_tensor(path, inside_optimizer, declared=4 * _MARK, stored=64 << 20)
    with pytest.raises(UserError, match=r"tensor record of 67,108,864 bytes uncompressed, larger than any tensor it declares"):
        load_checkpoint(path)


def test_records_torch_save_does_not_write_and_an_oversized_pickle_are_refused(tmp_path):
    path = tmp_path / "extra.pth"
    save_checkpoint(path, _shipped("fsrcnn_x3"))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/notes.txt", "hello")
    with pytest.raises(UserError, match=r"holds 'archive/notes.txt', which torch.save does not write"):
        load_checkpoint(path)
    save_checkpoint(path, _shipped("fsrcnn_x3"))
    _rewrite_archive(path, lambda data: data + bytes(8 << 20))  # zeros after the STOP opcode
    with pytest.raises(UserError, match=r"data.pkl is 8,390,\d+ bytes uncompressed, over the limit of 4,194,304"):
        load_checkpoint(path)


def test_a_field_nested_100000_deep_is_refused_in_one_line(tmp_path):
    # Row 3: the epoch nested 100,000 lists deep ended in a RecursionError traceback (the repr
    # of the error message). Pickled by hand: EMPTY_LIST x N, then APPEND x (N - 1).
    path = tmp_path / "deep.pth"
    save_checkpoint(path, dict(_shipped("fsrcnn_x3"), epoch="NESTMARK"))
    n = 100_000
    _rewrite_archive(path, lambda data: data.replace(b"X\x08\x00\x00\x00NESTMARK", b"]" * n + b"a" * (n - 1)))
    with pytest.raises(UserError, match=r"checkpoint nests containers over 16 deep \(MAX_NESTING") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_finite_but_huge_weights_are_refused(tmp_path):
    # Row 4: weights of 3e38 (finite) made a garbage image, exit 0.
    state = _shipped("fsrcnn_x3")
    state["model"]["deconv.weight"] = torch.full_like(state["model"]["deconv.weight"], 3e38)
    save_checkpoint(tmp_path / "huge.pth", state)
    with pytest.raises(UserError, match=r"tensor 'deconv.weight' holds a weight of magnitude 3e\+38, over the limit of 1000 \(MAX_WEIGHT"):
        load_checkpoint(tmp_path / "huge.pth")


def test_a_pth_is_unpickled_once_from_is_checkpoint_to_its_tensors(tmp_path, monkeypatch):
    # The enlarger asks is_checkpoint, then loads: that read the pickle three times (is_checkpoint, then a
    # meta pass and a CPU pass), each time a file someone sent is parsed.
    path, original = tmp_path / "w.pth", _state()
    save_checkpoint(path, dict(original, epoch=1))
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs.get("map_location")) or real_load(*args, **kwargs))
    assert is_checkpoint(path)
    state = load_checkpoint(path)
    assert len(calls) == 1 and state["epoch"] == 1
    assert state["model"].keys() == original["model"].keys()
    assert all(torch.equal(state["model"][k], v) for k, v in original["model"].items())
    save_checkpoint(path, dict(original, epoch=2))  # the same path, the same size: read again, not remembered
    assert is_checkpoint(path) and load_checkpoint(path)["epoch"] == 2 and len(calls) == 2
