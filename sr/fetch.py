"""Download the benchmark sets from their public sources, pinned to a commit.

    python -m sr.fetch                                # T91 Set5 Set14 BSDS100 BSDS200 into $SR_DATA, else ./data
    python -m sr.fetch Set5 Set14 --data-root data

``sr/sources.tsv`` lists each of the 410 images: the repository, commit and path of its source
file, that file's size and sha256, the conversion that turns it into ``<data root>/<set>/<file>``,
and the resulting PNG's sha256 and pixel hash. Every download is checked against its sha256
before it is converted; images already present are verified and skipped, so running the command
again after an interruption goes on where it stopped. A set that is not there yet is filled in a
hidden ``.<set>.partial`` folder, renamed into place once complete, so no script reads half a set.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image
from tqdm import tqdm

from sr.atomic import atomic_path
from sr.cli import ArgumentParser, add_data_root, non_negative_int, run
from sr.data.sets import SOURCES, data_root
from sr.errors import Interrupted, UserError

MANIFEST = Path(__file__).with_name("sources.tsv")
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
TIMEOUT_S = 30

# The `conversion` values in SOURCES.tsv -> the Pillow format the source must decode as (None: copy the bytes).
CONVERSIONS = {
    "none (copied as-is)": None,
    "BMP->PNG lossless (pixels identical)": "BMP",
    "JPEG decoded (PIL/libjpeg, islow) -> PNG; pixels match standard BSDS100 PNGs": "JPEG",
}


@dataclass(frozen=True)
class Source:
    """One row of the manifest: where an image comes from and what it must hash to."""

    dataset: str
    file: str
    source_repo: str
    source_commit: str
    source_path: str
    source_bytes: int
    source_sha256: str
    conversion: str
    png_sha256: str  # the reference PNG's bytes; a PNG we encode may differ, so pixels_sha256 decides
    pixels_sha256: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.source_repo}/{self.source_commit}/{self.source_path}"


class Refused(Exception):
    """A download that does not match the manifest; that image is skipped, the run goes on."""


def load_sources(path: Path = MANIFEST) -> list[Source]:
    """The manifest's rows; UserError for a missing column or a conversion this module does not know."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the fetch manifest: {exc.strerror or exc}") from None
    sources = []
    for line, row in enumerate(rows, start=2):
        try:
            fields = {name: row[name] for name in Source.__dataclass_fields__}
            src = Source(**{**fields, "source_bytes": int(fields["source_bytes"])})
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}:{line}: not a fetch manifest row (columns: {', '.join(Source.__dataclass_fields__)})") from None
        if src.conversion not in CONVERSIONS:
            raise UserError(f"{path}:{line}: unknown conversion {src.conversion!r}")
        for column in ("dataset", "file"):
            if not is_plain_name(getattr(src, column)):
                raise UserError(f"{path}:{line}: {column} {getattr(src, column)!r} is not a plain file name "
                                "(no folders, no '..', not absolute): every write stays inside <data root>/<set>/")
        sources.append(src)
    return sources


def is_plain_name(name: str) -> bool:
    """A name that stays inside the folder it is joined to: no separator, no '.' or '..', no NUL."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
            and Path(name).name == name and not Path(name).is_absolute())


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to http(s): urllib's own handler also follows one to ftp://."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl[:80]} refused (http and https only)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpRedirectsOnly)


def pixels_sha256(img: Image.Image) -> str:
    """sha256 of mode, size and raw pixels: the same for every lossless encoding of the image."""
    h = hashlib.sha256(f"{img.mode} {img.width}x{img.height}\n".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def is_present(path: Path, src: Source) -> bool:
    """True if ``path`` holds ``src``'s image: the reference PNG's bytes, or failing that its pixels."""
    if not path.is_file():
        return False
    if _file_sha256(path) == src.png_sha256:
        return True
    try:
        with Image.open(path) as img:
            return pixels_sha256(img) == src.pixels_sha256
    except (OSError, ValueError):
        return False


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # the images are < 1 MB


def download(url: str, size: int, *, retries: int = 3, retry_delay: float = 1.0) -> tuple[IO[bytes], int, str]:
    """The body at ``url`` streamed to a temporary file -> (file rewound, bytes, sha256).

    At most ``size + 1`` bytes are read, so a wrong file cannot fill the disk. HTTP 4xx is
    Refused at once; connection errors, timeouts and HTTP 5xx/429 are tried again ``retries``
    times, then end the run with a UserError (a rerun resumes).
    """
    for attempt in range(retries + 1):
        body = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # the sources are < 1 MB: in memory
        try:
            sha, n = hashlib.sha256(), 0
            with _OPENER.open(url, timeout=TIMEOUT_S) as response:
                while n <= size and (chunk := response.read(min(1 << 16, size + 1 - n))):
                    sha.update(chunk)
                    body.write(chunk)
                    n += len(chunk)
            body.seek(0)
            return body, n, sha.hexdigest()
        except urllib.error.HTTPError as exc:
            body.close()
            exc.close()
            if exc.code < 500 and exc.code != 429:
                raise Refused(f"{url}: HTTP {exc.code} {exc.reason}") from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            body.close()
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        if attempt < retries:
            time.sleep(retry_delay * 2**attempt)
    raise UserError(f"cannot download {url}: {reason} (tried {retries + 1} times; run again to resume)")


def fetch_one(src: Source, target: Path, base_url: str, *, retries: int = 3, retry_delay: float = 1.0) -> None:
    """Download ``src``, check its size and sha256, convert it and write ``target`` atomically."""
    url = src.url(base_url)
    name = f"{src.dataset}/{src.file}"
    body, size, got = download(url, src.source_bytes, retries=retries, retry_delay=retry_delay)
    with body:
        if size != src.source_bytes:
            more = "+" if size > src.source_bytes else ""
            raise Refused(f"{name}: {url} gave {size}{more} bytes, expected {src.source_bytes}; not written")
        if got != src.source_sha256:
            raise Refused(f"{name}: sha256 of {url} is {got}, expected {src.source_sha256}; not written")
        fmt = CONVERSIONS[src.conversion]
        if fmt is None:
            with atomic_path(target) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(body, out)
            return
        with Image.open(body, formats=[fmt]) as img:
            img.load()
            if pixels_sha256(img) != src.pixels_sha256:
                # The source is the right file, so the decoder differs from the one that made the reference.
                raise Refused(f"{name}: Pillow {Image.__version__} decodes {url} to other pixels than the reference; not written")
            with atomic_path(target) as tmp:
                img.save(tmp, format="PNG")


@dataclass
class Summary:
    fetched: int = 0
    present: int = 0
    refused: int = 0
    incomplete: tuple[str, ...] = ()


def fetch(root: Path, sets: Sequence[str] = (), *, base_url: str = DEFAULT_BASE_URL, manifest: Path = MANIFEST,
          retries: int = 3, retry_delay: float = 1.0) -> Summary:
    """Fetch ``sets`` (default: all in the manifest) under ``root``; see the module docstring.

    Every name comes from the manifest, which ``load_sources`` has checked to be plain file
    and set names: nothing is written outside ``root``."""
    sources = load_sources(manifest)
    known = list(dict.fromkeys(src.dataset for src in sources))
    by_lower = {name.lower(): name for name in known}
    wanted = []
    for name in sets or known:
        if name.lower() not in by_lower:
            raise UserError(f"unknown set {name!r}: choose from {', '.join(known)}")
        wanted.append(by_lower[name.lower()])
    wanted = list(dict.fromkeys(wanted))

    summary = Summary()
    folders, todo = {}, []
    for name in wanted:
        final, staging = root / name, root / f".{name}.partial"
        folder = folders[name] = final if final.is_dir() else staging
        for stale in folder.glob(".*.tmp.png"):  # left by a killed run (atomic writes clean up otherwise)
            stale.unlink()
        for src in (s for s in sources if s.dataset == name):
            target = folder / src.file
            if is_present(target, src):
                summary.present += 1
            else:
                if target.exists():
                    tqdm.write(f"{target}: not the expected image, fetching it again", file=sys.stderr)
                todo.append((src, target))

    refused = set()
    try:
        for src, target in tqdm(todo, desc="fetch", unit="image", disable=not todo):
            try:
                fetch_one(src, target, base_url, retries=retries, retry_delay=retry_delay)
                summary.fetched += 1
            except Refused as exc:
                tqdm.write(f"refused {exc}", file=sys.stderr)
                refused.add(src.dataset)
                summary.refused += 1
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {summary.fetched} images; run the same command again to resume") from None

    for name in wanted:
        final = root / name
        if name in refused:
            summary.incomplete += (name,)
        elif folders[name] != final and folders[name].is_dir():
            os.replace(folders[name], final)
    return summary


def parse_args(argv: Sequence[str] | None = None):
    p = ArgumentParser(prog="python -m sr.fetch", description="Download the benchmark image sets, checked by sha256.")
    p.add_argument("sets", nargs="*", metavar="SET", help=f"{', '.join(SOURCES)} (default: all)")
    add_data_root(p, "the sets, where they are written")
    p.add_argument("--base-url", help=f"mirror of raw.githubusercontent.com (default: $SR_FETCH_BASE_URL, else {DEFAULT_BASE_URL})")
    p.add_argument("--retries", type=non_negative_int, default=3, help="tries again after a network error (default: 3)")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)  # for tests
    return p.parse_args(argv)


def main(args) -> Summary:
    root = data_root(args.data_root)
    base_url = args.base_url or os.environ.get("SR_FETCH_BASE_URL") or DEFAULT_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise UserError(f"--base-url must start with http:// or https://, got {base_url!r}")
    summary = fetch(root, args.sets, base_url=base_url, manifest=args.manifest, retries=args.retries)
    print(f"{root}: {summary.fetched} images fetched, {summary.present} already present, {summary.refused} refused")
    if summary.refused:
        raise UserError(f"{summary.refused} images refused (see above); not complete: {', '.join(summary.incomplete)}")
    return summary


if __name__ == "__main__":
    sys.exit(run(main, parse_args))
