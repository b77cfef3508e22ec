"""Export a checkpoint to ONNX, any input size, with the checkpoint's facts inside.

    python -m sr.export --weights fsrcnn_x3 --output fsrcnn_x3.onnx
    python eval.py --weights fsrcnn_x3.onnx --image photo.png --upscale

The graph takes "input", (N, C, h, w) float32 in [0, 1], and gives "output", (N, C, H, W);
batch, height and width are free. ``metadata_props`` holds FORMAT, arch, model_kwargs
(JSON), scale, color, layout, receptive_radius and whole_image_norm, which
``sr.onnx_runtime.OnnxModel`` reads back. Needs ``pip install -e ".[onnx]"``.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from sr.atomic import atomic_path
from sr.checkpoint import load_checkpoint, model_from_checkpoint
from sr.cli import ArgumentParser, positive_int, run
from sr.errors import UserError, first_line
from sr.weights import resolve_weights
from sr.models import COLORS
from sr.onnx_runtime import FORMAT, INPUT, OUTPUT, require
from sr.tiling import receptive_radius

DEFAULT_OPSET = 17  # the TorchScript exporter's default; onnxruntime >= 1.14 runs it
CHECK_TOLERANCE = 1e-3  # fp32 graphs agree to ~1e-6; the promise to users is 1/255


def export_onnx(checkpoint_path: str | Path, output_path: str | Path, opset: int = DEFAULT_OPSET) -> dict[str, str]:
    """Write the checkpoint's network (fp32, eval mode) as an ONNX file; returns the metadata stored.

    The graph is checked against PyTorch with onnxruntime on an input of another size than
    the traced one before the file is written, so a written file is known to run.
    """
    onnx, ort = require("onnx"), require("onnxruntime")
    state = load_checkpoint(checkpoint_path)
    model = model_from_checkpoint(state, checkpoint_path).float().eval()
    channels = COLORS[state["color"]]
    meta = {
        "format": FORMAT,
        "arch": state["arch"],
        "model_kwargs": json.dumps(state["model_kwargs"], sort_keys=True),
        "scale": str(int(state["scale"])),
        "color": state["color"],
        "layout": state["layout"],
        # sr.tiling cannot see layers inside a graph: the margin and the InstanceNorm caveat travel along
        "receptive_radius": str(receptive_radius(model)),
        "whole_image_norm": json.dumps(any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())),
        "source": Path(checkpoint_path).name,
    }

    buffer = io.BytesIO()
    example = torch.rand(1, channels, 32, 32)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter (dynamo=False) is deprecated in favour of the torch.export one,
            # which needs onnxscript besides and takes seconds where this takes a fraction of one.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"},
                              OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}},
            )  # fmt: skip
    except (ValueError, RuntimeError) as exc:  # e.g. an opset the exporter does not know
        raise UserError(f"cannot export {checkpoint_path} at opset {opset}: {first_line(exc)}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    # Another size than the traced 32x32 (odd, not square, batch 2) proves the axes are free.
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = torch.rand(2, channels, 19, 13)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session.run([OUTPUT], {INPUT: x.numpy()})
    if got.shape != expected.shape or abs(got - expected).max() > CHECK_TOLERANCE:
        raise RuntimeError(f"ONNX export of {checkpoint_path} does not match PyTorch "
                           f"(shape {got.shape} vs {expected.shape}, max diff {abs(got - expected).max():.2e})")

    with atomic_path(output_path) as tmp:
        tmp.write_bytes(data)
    return meta


def parse_args(argv: list[str] | None = None):
    p = ArgumentParser(prog="python -m sr.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="a checkpoint file, or a shipped name such as fsrcnn_x3 (see weights/)")
    p.add_argument("--output", type=Path, help="the .onnx file to write (default: <checkpoint name>.onnx here)")
    p.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET, help=f"ONNX opset version (default: {DEFAULT_OPSET})")
    return p.parse_args(argv)


def main(args) -> Path:
    checkpoint = resolve_weights(args.weights)
    output = args.output or Path(f"{checkpoint.stem}.onnx")
    meta = export_onnx(checkpoint, output, args.opset)
    print(f"{output}: {meta['arch']} x{meta['scale']} {meta['color']} {meta['layout']}, opset {args.opset}, "
          f"{output.stat().st_size / 1e6:.2f} MB")
    return output


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
