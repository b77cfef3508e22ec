"""What the four scripts share at the command line: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sr.errors import Interrupted, UserError, escaped
from sr.interrupts import stop_on_sigterm_as_on_ctrl_c

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its error as one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def _bounded(convert: Callable[[str], Any], accept: Callable[[Any], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse ``type`` that converts a flag's text and checks its range."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return parse


def scale_type(text: str) -> int:
    """--scale: an integer of at least 2."""
    try:
        return _bounded(int, lambda v: v >= 2, "an integer >= 2")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"scale must be an integer >= 2, got {text!r}") from None


positive_int = _bounded(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _bounded(float, lambda v: v > 0, "a positive number")
percent = _bounded(int, lambda v: 1 <= v <= 100, "an integer in 1..100")  # JPEG and WebP qualities
fraction = _bounded(float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")  # --denoise
factor_above_one = _bounded(float, lambda v: 1 < v < float("inf"), "a factor greater than 1")  # --outscale
decay = _bounded(float, lambda v: 0.0 <= v < 1.0, "0 (off) or a decay below 1, e.g. 0.999")  # --ema


def file_name(text: str) -> str:
    """An argparse ``type``: a name that stays in the folder it is used in (no folder part, no
    '..', no control character), e.g. an export's --name, which becomes <folder>/<name>.json."""
    if text in ("", ".", "..") or "/" in text or "\\" in text or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected a name, not a path: {text!r}")
    return text


def add_scale(p: Any, **kwargs: Any) -> None:
    """--scale, an integer >= 2; ``kwargs`` say whether it is required and what its default means."""
    kwargs.setdefault("help", "upscaling factor, an integer >= 2")
    p.add_argument("--scale", type=scale_type, **kwargs)


def add_data_root(p: Any, what: str = "T91/, Set5/, ...") -> None:
    """--data-root: where the image sets are (sr.data.sets.data_root reads it, then $SR_DATA, then ./data)."""
    p.add_argument("--data-root", help=f"folder holding {what} (default: $SR_DATA, else ./data)")


def add_device(p: Any, amp_help: str) -> None:
    """--device and --amp, the same for training and eval.py; ``amp_help`` says what --amp's default is there."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda when available")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help=amp_help)


def run(main: Callable[[Any], Any], parse_args: Callable[[], Any]) -> int:
    """Call ``main(parse_args())`` and turn user-facing failures into one line on stderr.

    Exit codes: 0 done, 2 bad input (UserError, or an OS error such as a full disk),
    130 interrupted by Ctrl-C or SIGTERM (Interrupted carries what was saved). Anything else is a bug and keeps its traceback.
    """
    prog = sys.argv[0].rsplit("/", 1)[-1]
    stop_on_sigterm_as_on_ctrl_c()  # `kill` saves and exits like Ctrl-C
    try:
        main(parse_args())
    except UserError as exc:  # one line, whatever names it quotes
        print(escaped(f"{prog}: error: {exc}"), file=sys.stderr)
        return EXIT_USER_ERROR
    except Interrupted as exc:
        print(escaped(f"{prog}: {exc}"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(escaped(f"{prog}: error: {where}{exc.strerror or exc}"), file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
