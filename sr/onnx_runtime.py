"""Running an ONNX export of a checkpoint with onnxruntime, in place of the PyTorch model.

``sr.export`` writes the .onnx with everything the checkpoint knows in its
``metadata_props`` (FORMAT tag, arch, model_kwargs, scale, color, layout, plus the
receptive radius that tiling needs). ``OnnxModel`` reads it back and is called like the
network: (N, C, h, w) float tensor in [0, 1] -> (N, C, H, W) tensor, so
``sr.protocol.predict`` and ``sr.tiling.tiled_forward`` take it as they take the .pth's model.

onnx and onnxruntime are the optional extra ``pip install -e ".[onnx]"``; nothing here
imports them until it is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from sr.checkpoint_fields import check_network_fields
from sr.errors import UserError, first_line
from sr.models import COLORS

FORMAT = "sr-onnx-v1"
INPUT, OUTPUT = "input", "output"
# Metadata values are short JSON or numbers (model_kwargs, the longest, is under 200 characters);
# a value over the bound is refused before it is parsed.
MAX_METADATA_CHARS = 4096
# The tiling margin: SRResNet x8's is the largest here, far below this.
MAX_RECEPTIVE_RADIUS = 1024
_REQUIRED = ("arch", "model_kwargs", "scale", "color", "layout", "receptive_radius", "whole_image_norm")
# The probe every file is run on at load, (height, width): not square, so swapped axes show; tiny,
# so that a graph enlarging 2000x instead of its metadata's scale asks for ~100 MB, not gigabytes.
PROBE_HW = (2, 3)


def require(module: str) -> ModuleType:
    """Import ``onnx`` or ``onnxruntime``, or say in one line how to install them."""
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f'{module} is not installed; ONNX export and inference need the extra: pip install -e ".[onnx]"') from None


def _ort_message(exc: Exception) -> str:
    # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from x failed:Protobuf parsing failed." -> the last part
    return first_line(exc).rsplit(" : ", 1)[-1]


class OnnxModel(nn.Module):
    """An exported model run by onnxruntime on the CPU; a parameter-free stand-in for the network.

    ``arch``, ``model_kwargs``, ``scale``, ``color``, ``layout`` are the checkpoint's;
    ``receptive_radius`` is the tiling margin; ``whole_image_norm`` is True for models with
    InstanceNorm, which tiles of the graph cannot reproduce (``tiled_forward`` refuses them).
    ``threads`` defaults to ``torch.get_num_threads()``, so both back ends run alike.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        ort = require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, InvalidGraph, ...) derive from Exception only
            raise UserError(f"{self.path}: not a readable ONNX model ({_ort_message(exc)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise UserError(f"{self.path}: not an ONNX export of this project (no {FORMAT!r} format tag); "
                            "make one with python -m sr.export")
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise UserError(f"{self.path}: ONNX metadata lacks {', '.join(missing)}")
        too_long = [k for k in _REQUIRED if len(meta[k]) > MAX_METADATA_CHARS]
        if too_long:
            raise UserError(f"{self.path}: ONNX metadata {', '.join(too_long)} over {MAX_METADATA_CHARS:,} characters")
        try:
            self.arch, self.color, self.layout = meta["arch"], meta["color"], meta["layout"]
            self.model_kwargs: dict[str, Any] = json.loads(meta["model_kwargs"])
            self.scale, self.receptive_radius = int(meta["scale"]), int(meta["receptive_radius"])
            self.whole_image_norm = bool(json.loads(meta["whole_image_norm"]))
        except (ValueError, RecursionError) as exc:  # json.loads of "[[[[..." 100,000 deep recurses
            raise UserError(f"{self.path}: unreadable ONNX metadata ({first_line(exc)})") from None
        # The same checks as a .pth's fields: the export must describe a network of the model table.
        check_network_fields(dict(arch=self.arch, model_kwargs=self.model_kwargs, scale=self.scale, color=self.color,
                                  layout=self.layout), f"{self.path}: ONNX metadata")
        if not 0 <= self.receptive_radius <= MAX_RECEPTIVE_RADIUS:
            raise UserError(f"{self.path}: ONNX metadata field 'receptive_radius' is {self.receptive_radius}; "
                            f"it must be from 0 to {MAX_RECEPTIVE_RADIUS}")
        names = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if names != ([INPUT], [OUTPUT]):
            raise UserError(f"{self.path}: expected one input {INPUT!r} and one output {OUTPUT!r}, found {names}")
        self.forward(torch.zeros(1, COLORS[self.color], *PROBE_HW))  # the graph against what its metadata says

    def expected_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape the metadata promises for an (N, C, h, w) input: h and w times the
        model's own enlargement (the scale for "lr-hr", 1 for "upsampled")."""
        n, _, h, w = shape
        factor = self.scale if self.layout == "lr-hr" else 1
        return (n, COLORS[self.color], h * factor, w * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) in [0, 1], any device and float dtype -> float32 output on ``x``'s device."""
        inputs = x.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            (out,) = self.session.run([OUTPUT], {INPUT: inputs})
        except Exception as exc:  # onnxruntime's errors (allocation, shapes) derive from Exception only
            shape = "x".join(map(str, inputs.shape))
            raise UserError(f"{self.path}: onnxruntime failed on a {shape} input ({_ort_message(exc)})") from None
        wanted = self.expected_shape(inputs.shape)
        if tuple(out.shape) != wanted:
            def size(shape: tuple[int, ...]) -> str:  # (N, C, H, W) -> "WxH", with the channels where they differ
                return f"{shape[3]}x{shape[2]}" + (f" in {shape[1]} channel(s)" if shape[1] != wanted[1] else "")

            got = size(out.shape) if out.ndim == 4 and out.shape[0] == wanted[0] else f"an array of shape {tuple(out.shape)}"
            raise UserError(f"{self.path}: its graph turns a {inputs.shape[3]}x{inputs.shape[2]} input into {got}, not the "
                            f"{size(wanted)} that x{self.scale} ({self.layout}) gives; refused")
        return torch.from_numpy(out).to(x.device)

    def extra_repr(self) -> str:
        return f"{self.path}, arch={self.arch}, scale={self.scale}, color={self.color}, layout={self.layout}"
