"""Where the benchmark image sets live: a data root with one folder per set."""

from __future__ import annotations

import os
from pathlib import Path

from sr.errors import UserError
from sr.data.images import list_images

# Where each public set comes from, for the message when it is missing.
SOURCES = {
    "T91": "the 91 training images of Yang et al. 2010 (e.g. data/yang91 in github.com/jiny2001/dcscn-super-resolution)",
    "Set5": "Bevilacqua et al. 2012 (e.g. CSet5 in github.com/majedelhelou/denoising_datasets)",
    "Set14": "Zeyde et al. 2010 (e.g. CSet14 in github.com/majedelhelou/denoising_datasets)",
    "BSDS100": "the 100 test images of BSD300, i.e. BSDS500 val (github.com/BIDS/BSDS500)",
    "BSDS200": "the 200 training images of BSD300, i.e. BSDS500 train (github.com/BIDS/BSDS500)",
}


def data_root(flag: str | None = None) -> Path:
    """--data-root, else $SR_DATA, else ./data."""
    return Path(flag or os.environ.get("SR_DATA") or "data")


def resolve_images(spec: str, root: Path) -> tuple[str, list[Path]]:
    """A set name under the data root, a folder, or one image file -> (name, files)."""
    path = Path(spec)
    if path.is_file():
        return path.stem, [path]
    if path.is_dir():
        return path.name, list_images(path)
    if spec in SOURCES or os.sep not in spec:
        folder = root / spec
        if folder.is_dir():
            return spec, list_images(folder)
        where = SOURCES.get(spec, "a folder of images")
        fetch = f"; get it with: python -m sr.fetch {spec} --data-root {root}" if spec in SOURCES else ""
        raise UserError(
            f"dataset {spec!r} not found: looked for {folder}/ (set the data root with --data-root or SR_DATA); "
            f"{spec} is {where}{fetch}"
        )
    raise UserError(f"{spec}: no such file or folder")


def content_hash(path: Path) -> str:
    """sha256 of a file's bytes: the same for a renamed, copied or symlinked image (< 1 MB each here)."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def test_set_hashes(root: Path, names: tuple[str, ...]) -> dict[str, str]:
    """content hash -> "<set>/<file>" for the test sets ``names`` found under ``root`` (a set
    that is not there adds nothing). Set5, Set14 and BSDS100 are 119 files, hashed in a fraction of a second."""
    hashes = {}
    for name in names:
        if (root / name).is_dir():
            for path in list_images(root / name):
                hashes.setdefault(content_hash(path), f"{name}/{path.name}")
    return hashes


def portable(path: str | Path, *bases: str | Path) -> str:
    """``path`` as a recipe records it: relative to the first of ``bases`` (then the working
    folder) that holds it when it is absolute, else as given. No machine's paths in records."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    for base in (*bases, Path.cwd()):
        try:
            return str(Path(os.path.abspath(path)).relative_to(os.path.abspath(base)))
        except ValueError:
            continue
    return str(path)
