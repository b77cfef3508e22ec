"""sr.fetch against a loopback HTTP server serving a few tiny source files; nothing reaches the internet."""

from __future__ import annotations

import csv
import hashlib
import http.server
import io
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr import fetch
from sr.data.sets import resolve_images
from sr.errors import Interrupted, UserError
from tests.conftest import ROOT

BMP, JPEG, COPY = (next(k for k, v in fetch.CONVERSIONS.items() if v == fmt) for fmt in ("BMP", "JPEG", None))


class Server:
    """Serves ``folder`` as ``<repo>/<commit>/<path>``; counts requests, answers 503 for paths in ``fail``."""

    def __init__(self, folder: Path):
        self.requests: Counter[str] = Counter()
        self.fail: Counter[str] = Counter()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                server.requests[self.path] += 1
                if server.fail[self.path] > 0:
                    server.fail[self.path] -= 1
                    self.send_error(503)
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture
def site(tmp_path):
    """A served tree, a manifest for it and an empty data root.

    T91: two BMPs; BSDS100: one JPEG; Set5: one PNG, and one PNG served with a flipped byte.
    """
    rng = np.random.default_rng(0)
    files = {  # (dataset, file) -> (source path, conversion, bytes)
        ("T91", "t1.png"): ("data/t1.bmp", BMP, encode(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8), "BMP")),
        ("T91", "t2.png"): ("data/t2.bmp", BMP, encode(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "BMP")),
        ("BSDS100", "3096.png"): ("val/3096.jpg", JPEG, encode(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), "JPEG")),
        ("Set5", "baby.png"): ("CSet5/baby.png", COPY, encode(rng.integers(0, 256, (5, 5), dtype=np.uint8), "PNG")),
        ("Set5", "bird.png"): ("CSet5/bird.png", COPY, encode(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), "PNG")),
    }
    served = tmp_path / "served"
    rows = []
    for (dataset, name), (path, conversion, data) in files.items():
        repo, commit = "owner/repo", "0123abcd"
        out = served / repo / commit / path
        out.parent.mkdir(parents=True, exist_ok=True)
        corrupt = name == "bird.png"
        out.write_bytes(data[:-1] + bytes([data[-1] ^ 1]) if corrupt else data)
        png = data if conversion == COPY else encode(decoded(data), "PNG")
        rows.append({"dataset": dataset, "file": name, "source_repo": repo, "source_commit": commit, "source_path": path,
                     "source_bytes": len(data), "source_sha256": hashlib.sha256(data).hexdigest(), "conversion": conversion,
                     "png_bytes": len(png), "png_sha256": hashlib.sha256(png).hexdigest(),
                     "pixels_sha256": fetch.pixels_sha256(Image.open(io.BytesIO(data)))})
    manifest = tmp_path / "sources.tsv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    server = Server(served)
    yield server, manifest, tmp_path / "data", files
    server.close()


def run(site, *sets, **kwargs) -> fetch.Summary:
    server, manifest, root, _ = site
    return fetch.fetch(root, sets, base_url=server.url, manifest=manifest, retry_delay=0, **kwargs)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name]


def test_it_converts_and_refuses_the_corrupted_file_with_one_line(site, capsys):
    server, manifest, root, files = site
    args = fetch.parse_args(["--data-root", str(root), "--base-url", server.url, "--manifest", str(manifest)])
    with pytest.raises(UserError, match=r"1 images refused \(see above\); not complete: Set5$"):
        fetch.main(args)

    for name in ("t1.png", "t2.png"):  # BMP -> PNG, lossless
        np.testing.assert_array_equal(decoded((root / "T91" / name).read_bytes()), decoded(files["T91", name][2]))
    assert Image.open(root / "BSDS100" / "3096.png").format == "PNG"
    np.testing.assert_array_equal(decoded((root / "BSDS100" / "3096.png").read_bytes()), decoded(files["BSDS100", "3096.png"][2]))
    # Set5 stays hidden until complete: the good PNG is there byte for byte, the corrupted one is not written
    assert not (root / "Set5").exists()
    assert (root / ".Set5.partial" / "baby.png").read_bytes() == files["Set5", "baby.png"][2]
    assert not (root / ".Set5.partial" / "bird.png").exists()
    expected = hashlib.sha256(files["Set5", "bird.png"][2]).hexdigest()
    refusals = [line for line in capsys.readouterr().err.splitlines() if line.startswith("refused")]
    assert len(refusals) == 1
    assert refusals[0].startswith("refused Set5/bird.png: sha256 of http://127.0.0.1:") and f"expected {expected}" in refusals[0]
    assert leftovers(root) == []


def test_a_second_run_downloads_nothing(site):
    server, _, root, _ = site
    first = run(site, "T91", "bsds100")
    assert (first.fetched, first.present, first.refused) == (3, 0, 0)
    server.requests.clear()
    second = run(site, "T91", "BSDS100")
    assert (second.fetched, second.present) == (0, 3)
    assert sum(server.requests.values()) == 0
    # a file that is not the expected image is fetched again
    (root / "T91" / "t1.png").write_bytes(encode(np.zeros((9, 7, 3), np.uint8), "PNG"))
    assert run(site, "T91").fetched == 1
    assert list(server.requests) == ["/owner/repo/0123abcd/data/t1.bmp"]


def test_an_interrupted_run_resumes_where_it_stopped(site):
    server, _, root, _ = site
    server.fail["/owner/repo/0123abcd/data/t2.bmp"] = 1
    with pytest.raises(UserError, match=r"cannot download http://.*/data/t2\.bmp: HTTP 503 .*run again to resume"):
        run(site, "T91", retries=0)
    assert (root / ".T91.partial" / "t1.png").is_file() and not (root / "T91").exists()
    assert leftovers(root) == []

    server.requests.clear()
    summary = run(site, "T91", retries=0)
    assert (summary.fetched, summary.present) == (1, 1)
    assert list(server.requests) == ["/owner/repo/0123abcd/data/t2.bmp"]
    assert sorted(p.name for p in root.iterdir()) == ["T91"]
    assert sorted(p.name for p in (root / "T91").iterdir()) == ["t1.png", "t2.png"]


def test_ctrl_c_says_how_to_resume(site, monkeypatch):
    _, _, root, _ = site
    real, calls = fetch.fetch_one, []

    def fetch_then_stop(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(*args, **kwargs)

    monkeypatch.setattr(fetch, "fetch_one", fetch_then_stop)
    with pytest.raises(Interrupted, match="interrupted after 1 images; run the same command again to resume"):
        run(site, "T91")
    assert [p.name for p in (root / ".T91.partial").iterdir()] == ["t1.png"]


def test_a_transient_error_is_retried_and_a_killed_runs_temp_file_removed(site):
    server, _, root, _ = site
    stale = root / ".T91.partial" / ".t1.abc123.tmp.png"  # what sr.atomic leaves if the process is killed
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    server.fail["/owner/repo/0123abcd/data/t1.bmp"] = 1
    assert run(site, "T91", retries=1).fetched == 2
    assert server.requests["/owner/repo/0123abcd/data/t1.bmp"] == 2
    assert leftovers(root) == []


def test_the_cli_exits_2_and_names_the_count(site):
    server, manifest, root, _ = site
    result = subprocess.run([sys.executable, "-m", "sr.fetch", "Set5", "--data-root", str(root), "--manifest", str(manifest)],
                            cwd=ROOT, capture_output=True, text=True, env={"SR_FETCH_BASE_URL": server.url, "PATH": ""})
    assert result.returncode == 2
    assert "1 images fetched, 0 already present, 1 refused" in result.stdout
    assert result.stderr.splitlines()[-1].endswith("error: 1 images refused (see above); not complete: Set5")


@pytest.mark.parametrize("argv, message", [
    (["Set6"], "unknown set 'Set6': choose from T91, Set5, Set14, BSDS100, BSDS200"),
    (["--base-url", "ftp://mirror"], "--base-url must start with http:// or https://"),
])
def test_bad_arguments_are_one_line(argv, message, tmp_path):
    with pytest.raises(UserError, match=message):
        fetch.main(fetch.parse_args([*argv, "--data-root", str(tmp_path)]))
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_manifest_lists_the_five_sets():
    sources = fetch.load_sources()
    assert Counter(s.dataset for s in sources) == {"T91": 91, "Set5": 5, "Set14": 14, "BSDS100": 100, "BSDS200": 200}
    assert Counter(fetch.CONVERSIONS[s.conversion] for s in sources) == {"BMP": 91, "JPEG": 100, None: 219}
    assert sources[0].url(fetch.DEFAULT_BASE_URL) == (
        "https://raw.githubusercontent.com/jiny2001/dcscn-super-resolution/d382bc30d41c94ac72f8cb148d61cc4864b3b380/data/yang91/t1.bmp")


def test_the_shipped_manifest_recognises_the_shared_images(data_root, tmp_path):
    sources = {(s.dataset, s.file): s for s in fetch.load_sources()}
    for (dataset, name), src in sources.items():
        if dataset in ("Set5", "Set14"):
            assert fetch.is_present(data_root / dataset / name, src), name
    # a converted image that Pillow encoded with other settings has other bytes, and still counts as present
    for key in (("T91", "t1.png"), ("BSDS100", "3096.png")):
        Image.open(data_root.joinpath(*key)).save(tmp_path / "x.png", compress_level=1)
        assert fetch.is_present(tmp_path / "x.png", sources[key])
        assert not fetch.is_present(tmp_path / "x.png", sources["T91", "t2.png"])


def test_an_unknown_conversion_is_refused(tmp_path):
    manifest = tmp_path / "sources.tsv"
    lines = fetch.MANIFEST.read_text().splitlines()[:2]
    manifest.write_text(lines[0] + "\n" + lines[1].replace("BMP->PNG", "TIFF->PNG") + "\n")
    with pytest.raises(UserError, match=r"sources.tsv:2: unknown conversion 'TIFF->PNG"):
        fetch.load_sources(manifest)


def test_a_missing_set_names_the_fetch_command(tmp_path):
    with pytest.raises(UserError, match=f"dataset 'Set5' not found: .*get it with: python -m sr.fetch Set5 --data-root {tmp_path}$"):
        resolve_images("Set5", tmp_path)


# --- issue 21: writes stay inside the data root; redirects to http(s) only; reads stop at the cap


@pytest.mark.parametrize("column, value", [("file", "../../x.png"), ("file", "/tmp/x.png"), ("dataset", "../../set"),
                                           ("file", "sub/x.png"), ("dataset", ".."), ("file", "..\\x.png")])
def test_a_manifest_name_that_leaves_its_folder_is_refused(site, column, value):
    # Row 8: file=../../x.png, an absolute file or dataset=../../set made sr.fetch write outside the data root.
    server, manifest, root, _ = site
    rows = list(csv.DictReader(open(manifest, newline=""), delimiter="\t"))
    rows[0][column] = value
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UserError, match=rf"sources.tsv:2: {column} .* is not a plain file name"):
        run(site)
    assert not root.exists() or not any(root.rglob("*"))
    assert not any(p.name == "x.png" for p in manifest.parent.parent.rglob("x.png"))


class _Redirecting(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", "ftp://127.0.0.1:9/x.bmp" if self.path == "/ftp" else "/ok")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_is_followed_to_http_only():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with pytest.raises(fetch.Refused, match=r"redirect to ftp://127.0.0.1:9/x.bmp refused \(http and https only\)"):
            fetch.download(f"http://127.0.0.1:{httpd.server_address[1]}/ftp", 100, retries=0)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_body_larger_than_declared_stops_at_the_cap(site):
    # A wrong file cannot fill the disk: at most the declared size plus one byte is read.
    server, _, _, _ = site
    (site[1].parent / "served" / "owner" / "repo" / "0123abcd" / "data" / "huge.bin").write_bytes(bytes(8 << 20))
    url = f"{server.url}/owner/repo/0123abcd/data/huge.bin"
    body, size, _ = fetch.download(url, 1000, retries=0)
    with body:
        assert size == 1001 and len(body.read()) == 1001
