"""The whole score tables the suite checks only in part, each row measured through eval.py now:

- bicubic: BasicSR's bicubic table (Set5, Set14, BSDS100 at x2, x3, x4; tests/test_protocol.py);
- shipped: every model in weights/ re-scored on Set5, and on Set14 for the Y models, against the
  scores its recipe records (tests/test_shipped_weights.py).

    python -m bench.tables                  # both: about six minutes on 2 cores
    python -m bench.tables bicubic          # one of them
    python -m bench.tables shipped -- -x    # after --: more pytest flags

These are the tests marked ``benchmark`` (which pytest.ini deselects from the suite), run together
with the suite's own rows of the same tables. Prints one line a row (measured and expected PSNR /
SSIM on Y, and whether it passed) and exits with pytest's status: 0 when every row matched.
The benchmark images are read where the tests read them ($SR_DATA, else ./data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "bicubic": "tests/test_protocol.py::test_bicubic_matches_the_reference_table",
    "shipped": "tests/test_shipped_weights.py::test_shipped_weights_score_their_recorded_result",
}


class Rows:
    """A pytest plugin that keeps each test's outcome and what it recorded with ``record_property``."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict]] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":  # a failed or skipped setup has no call
            self.rows.append((report.nodeid, report.outcome, dict(report.user_properties)))

    def print(self, table: str) -> None:
        rows = [row for row in self.rows if row[0].startswith(TABLES[table] + "[")]
        print(f"\n{table}: PSNR / SSIM on Y (basicsr protocol)")
        print(f"  {'row':<24} {'measured':>20} {'expected':>20}  result")
        for nodeid, outcome, recorded in rows:
            case = nodeid.split("[", 1)[1].rstrip("]")
            result = {"passed": "ok", "failed": "FAIL"}.get(outcome, outcome)
            print(f"  {case:<24} {recorded.get('measured', '-'):>20} {recorded.get('expected', '-'):>20}  {result}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    ours, pytest_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tables", nargs="*", metavar="TABLE", help=f"{' or '.join(TABLES)} (default: both)")
    args = p.parse_args(ours)
    if unknown := [t for t in args.tables if t not in TABLES]:
        p.error(f"no table {unknown[0]!r}: choose from {', '.join(TABLES)}")
    args.tables = list(dict.fromkeys(args.tables)) or list(TABLES)
    args.pytest_args = pytest_args
    return args


def main(args: argparse.Namespace) -> int:
    rows = Rows()
    # -m "": no marker filter, so the benchmark rows run beside the suite's rows of the same tables.
    status = pytest.main([*(str(ROOT / TABLES[t]) for t in args.tables), "-m", "", "-q", "-p", "no:cacheprovider",
                          *args.pytest_args], plugins=[rows])
    for table in args.tables:
        rows.print(table)
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
