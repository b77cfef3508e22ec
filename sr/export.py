"""Export a checkpoint to ONNX or safetensors, with the checkpoint's facts inside.

    python -m sr.export --weights fsrcnn_x3 --output fsrcnn_x3.onnx
    python eval.py --weights fsrcnn_x3.onnx --image photo.png --upscale
    python -m sr.export --weights runs/fsrcnn_x3/best.pth --format safetensors   # -> best.safetensors here
    python -m sr.export --shipped --format safetensors   # every weights/*.pth -> .safetensors, in place

safetensors (``sr.checkpoint.save_weights``): the network's tensors and, as JSON strings in the
metadata, format, arch, model_kwargs, scale, color, layout and name; no training state, no
pickle. A shipped name, or --shipped, converts weights/NAME.pth in place: the tensors are read
back from the new file and compared bit for bit with the .pth before the .pth is removed, and the
recipe's ``scored_sha256`` follows the file (same tensors, same scores).

The graph takes "input", (N, C, h, w) float32 in [0, 1], and gives "output", (N, C, H, W);
batch, height and width are free. ``metadata_props`` holds FORMAT, arch, model_kwargs
(JSON), scale, color, layout, receptive_radius and whole_image_norm, which
``sr.onnx_runtime.OnnxModel`` reads back. Needs ``pip install -e ".[onnx]"``.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import torch

from sr.atomic import atomic_path, atomic_write_text
from sr.checkpoint import WEIGHTS_FACTS, load_checkpoint, model_from_checkpoint, save_weights
from sr.cli import ArgumentParser, positive_int, run
from sr.errors import UserError, first_line, quoted
from sr.weights import WEIGHTS_DIR, resolve_weights
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


def export_safetensors(checkpoint_path: str | Path, output_path: str | Path) -> dict[str, torch.Tensor]:
    """Write the checkpoint's network as .safetensors (``sr.checkpoint.save_weights``), then read it
    back and check that every tensor equals the checkpoint's, dtype and bits; returns the tensors."""
    state = load_checkpoint(checkpoint_path)
    save_weights(output_path, {k: state[k] for k in WEIGHTS_FACTS if k in state and k != "format"} | {"model": state["model"]})
    written = load_checkpoint(output_path)
    for key in ("arch", "model_kwargs", "scale", "color", "layout", "name"):
        if written.get(key) != state.get(key):
            raise RuntimeError(f"{output_path}: {key} reads back as {written.get(key)!r}, not {state.get(key)!r}")
    differ = [k for k in state["model"] if k not in written["model"] or written["model"][k].dtype != state["model"][k].dtype
              or not torch.equal(written["model"][k], state["model"][k])]
    if differ or written["model"].keys() != state["model"].keys():
        raise RuntimeError(f"{output_path}: tensors differ from {checkpoint_path}: {', '.join(differ[:5])}")
    return written["model"]


def replace_shipped(pth: Path) -> str:
    """weights/NAME.pth -> weights/NAME.safetensors, checked bit for bit, then the .pth removed; the
    recipe's scored_sha256 (experiments/showcase.py) moves to the new file. Returns a line to print."""
    output = pth.with_suffix(".safetensors")
    old_digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    tensors = export_safetensors(pth, output)
    recipe_path = pth.with_suffix(".json")
    if recipe_path.is_file():
        recipe = json.loads(recipe_path.read_text())
        if recipe.get("scored_sha256") == old_digest:
            recipe["scored_sha256"] = hashlib.sha256(output.read_bytes()).hexdigest()
            atomic_write_text(recipe_path, json.dumps(recipe, indent=2) + "\n")
    pth.unlink()
    values = sum(t.numel() for t in tensors.values())
    return f"{output}: {len(tensors)} tensors ({values:,} values) equal to {pth.name} bit for bit; {pth.name} removed"


def refuse_overwriting(checkpoint: Path, output: Path, args) -> None:
    """An export never replaces the checkpoint it reads."""
    if output.resolve() != checkpoint.resolve():
        return
    if args.output:
        raise UserError(f"--output {output} is the checkpoint it exports; write the {args.format} file elsewhere")
    raise UserError(f"{checkpoint} is already {args.format}")  # the default name is the checkpoint's own


def parse_args(argv: list[str] | None = None):
    p = ArgumentParser(prog="python -m sr.export", description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--weights", help="a checkpoint file, or a shipped name such as fsrcnn_x3 (see weights/)")
    which.add_argument("--shipped", action="store_true", help="every weights/*.pth (with --format safetensors): converted in place")
    p.add_argument("--format", choices=("onnx", "safetensors"), default="onnx", help="what to write (default: onnx)")
    p.add_argument("--output", type=Path, help="the file to write (default: <checkpoint name>.onnx here; for safetensors "
                                                "of a shipped name, weights/<name>.safetensors in place of its .pth)")
    p.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET, help=f"ONNX opset version (default: {DEFAULT_OPSET})")
    return p.parse_args(argv)


def main(args) -> Path | list[Path]:
    """The file written, or for --shipped the files."""
    if args.shipped:
        if args.format != "safetensors" or args.output:
            raise UserError("--shipped converts weights/*.pth to .safetensors in place: give --format safetensors and no --output")
        converted = sorted(WEIGHTS_DIR.glob("*.pth"))
        for pth in converted:
            print(replace_shipped(pth))
        if not converted:
            print(f"{WEIGHTS_DIR}: no .pth left to convert")
        return [p.with_suffix(".safetensors") for p in converted]
    checkpoint = resolve_weights(args.weights)
    if args.format == "safetensors":
        if checkpoint.resolve().parent == WEIGHTS_DIR and checkpoint.suffix == ".pth" and not args.output:
            print(replace_shipped(checkpoint))
            return checkpoint.with_suffix(".safetensors")
        output = args.output or Path(f"{checkpoint.stem}.safetensors")
        refuse_overwriting(checkpoint, output, args)
        tensors = export_safetensors(checkpoint, output)
        print(f"{quoted(output)}: {len(tensors)} tensors, equal to {quoted(checkpoint)} bit for bit, {output.stat().st_size / 1e6:.2f} MB")
        return output
    output = args.output or Path(f"{checkpoint.stem}.onnx")
    refuse_overwriting(checkpoint, output, args)
    meta = export_onnx(checkpoint, output, args.opset)
    print(f"{quoted(output)}: {meta['arch']} x{meta['scale']} {meta['color']} {meta['layout']}, opset {args.opset}, "
          f"{output.stat().st_size / 1e6:.2f} MB")
    return output


if __name__ == "__main__":
    raise SystemExit(run(main, parse_args))
