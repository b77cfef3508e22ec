"""Where eval.py's results go, and what is refused before any work: a folder that cannot be
written, two results written to one path, a result written over an input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sr.errors import UserError
from sr.photo import EXTENSIONS, pick_format


def output_for(src: Path, output: Path | None, out_dir: Path, fmt: str | None, tag: str) -> tuple[Path, str]:
    """(path, format) of the enlargement of ``src``: ``output`` when given, else
    ``<out_dir>/<stem>_<tag>.<ext>`` in ``fmt``, else in the input's own format when it is one
    that is written here (jpg stays jpg, .JPEG stays .JPEG), else PNG (bmp, gif, ppm, ...)."""
    if output:
        return output, pick_format(output, fmt)
    own = src.suffix.lower().lstrip(".")
    if fmt:
        fmt, ext = fmt, fmt
    elif own in EXTENSIONS:
        fmt, ext = EXTENSIONS[own], src.suffix.lstrip(".")
    else:
        fmt, ext = "png", "png"
    return out_dir / f"{src.stem}_{tag}.{ext}", fmt


def check_writable(folder: Path) -> None:
    """Refuse an output folder that cannot be written in one line, before any model loads."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{folder}: cannot write enlarged images there ({exc.strerror or exc})") from None


def refuse_collisions(jobs: list[tuple[Path, list[Path]]], verb: str, extra: Path | None = None) -> None:
    """Refuse, before any work, ``jobs`` (each input with the files it writes) that would write over
    an input or write two results to one path; ``extra`` (a JSON summary) is written once for all,
    and must not be an input either. ``verb`` says what the jobs do ("enlarge", "score")."""
    inputs = {src.resolve() for src, _ in jobs}
    seen: dict[Path, Path] = {}
    for src, outputs in jobs:
        for dst in outputs + ([extra] if extra else []):
            if dst.resolve() in inputs:
                raise UserError(f"{src}: its output {dst} is an input, which is never overwritten; choose another --out-dir")
            other = seen.setdefault(dst.resolve(), src)
            if other is not src and dst != extra:
                raise UserError(f"{other} and {src} would both be written to {dst}; {verb} them into separate --out-dir folders")
