"""Where eval.py's results go, and what is refused before any work: a folder that cannot be
written, two results written to one path, a result written over an input, an enlargement too
large for the memory free or for its format (``check_fits``, from the input's header alone).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

from PIL import Image

from sr.checkpoint import load_checkpoint
from sr.enlarge_plan import ACTIVATION_BUDGET, STAGE_BUDGET, output_size
from sr.errors import UserError, quoted
from sr.photo_write import EXTENSIONS, PIL_FORMATS, pick_format
from sr.weights import resolve_weights

# Size checks before any work: an enlargement may take this share of the memory free when it
# starts (the machine is shared), and a format this many pixels a side.
MEMORY_SHARE = 0.25
SIDE_LIMITS = {"jpg": 65_535, "webp": 16_383}
PIXEL_BYTES = 4  # Pillow holds RGB, RGBA and LA in 4 bytes a pixel (L in 1, I;16 in 2): the most an output takes


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


def memory_available() -> int:
    """Bytes a new allocation can have now: MemAvailable (/proc/meminfo), or what the cgroup allows if less."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit, used = (open(f"/sys/fs/cgroup/memory.{n}").read().strip() for n in ("max", "current"))
        return min(free, int(limit) - int(used)) if limit != "max" else free
    except (OSError, ValueError):
        return free


def resident_memory() -> int:
    """Bytes this process holds now (its resident set: torch alone is most of a gigabyte); 0 where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of an image file as ``sr.photo.read_photo`` will give it (EXIF orientation
    applied), from its header alone; None when the header cannot be read (read_photo then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # the orientations that swap the sides
    except Exception:  # noqa: BLE001 (whatever the header holds, read_photo reports it in one line)
        return None
    return (width, height) if turned else (height, width)


def check_fits(path: str | Path, scale: int, outscale: float | None, fmt: str, available: int | None = None) -> None:
    """Refuse, before any work, an output that the memory free now (``available``, default
    ``memory_available()``) or the format cannot hold: one line naming the size and the flag that fits.

    The sizes come from the file's header. The output image is held whole while it is made
    (PIXEL_BYTES a pixel), beside what the process already holds, the decoded input and one
    tile's working memory; all of it may take MEMORY_SHARE of the memory free.
    """
    size = header_size(path)
    if size is None:
        return
    height, width = size
    out_h, out_w = output_size(height, width, scale, outscale)
    available = memory_available() if available is None else available
    beside = resident_memory() + height * width * PIXEL_BYTES + ACTIVATION_BUDGET + STAGE_BUDGET
    room = available * MEMORY_SHARE - beside  # what the output image may take
    side = SIDE_LIMITS.get(fmt, math.inf)

    def fits(factor: float | None) -> bool:  # None: the model's scale
        h, w = output_size(height, width, scale, factor)
        return h * w * PIXEL_BYTES <= room and max(h, w) <= side

    if fits(outscale):
        return
    factor = math.floor(min(math.sqrt(max(room, 0) / PIXEL_BYTES / (height * width)), side / max(height, width)) * 100) / 100
    while factor > 1 and not fits(factor):
        factor = round(factor - 0.01, 2)
    what = f"{width}x{height} x{outscale or scale:g} is {out_w}x{out_h} ({out_w * out_h / 1e6:,.0f} MP)"
    if out_h * out_w * PIXEL_BYTES > room:
        why = (f"held whole in memory while it is made: {out_h * out_w * PIXEL_BYTES / 1e9:,.1f} GB, and {beside / 1e9:.1f} "
               f"GB beside it are over {MEMORY_SHARE:.0%} of the {available / 1e9:.1f} GB free here")
        fix = f"--outscale {factor:g} fits" if factor > 1 else "nothing larger than the input fits"
    else:
        why = f"over the {side:,} pixels a side {PIL_FORMATS[fmt]} can store"
        fix = "write a PNG (--format png)" + (f", or --outscale {factor:g} fits" if factor > 1 else "")
    raise UserError(f"{quoted(path)}: {what}, {why}; {fix}")


@lru_cache(maxsize=None)
def _scale_of(weights: str) -> int:
    return int(load_checkpoint(resolve_weights(weights))["scale"])


def worth_reading(path: str | Path, weights: str, outscale: float | None) -> bool:
    """Whether ``path`` enlarged by ``weights`` (a shipped name) fits at all (``check_fits``, as a PNG).
    The picker reads a whole file to choose its model; a file that cannot be enlarged is not read
    for it, and is refused where each image is checked."""
    try:
        check_fits(path, _scale_of(weights), outscale, "png")
    except UserError:
        return False
    return True
