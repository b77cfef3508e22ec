"""The one exception type for problems with what the user gave us, and how names and messages are shown."""

import re

# What breaks a line or drives a terminal: C0 controls (newline, tab, ESC, ...), DEL, C1 controls,
# and the Unicode line and paragraph separators (which str.splitlines splits on too).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class UserError(Exception):
    """Bad input (a path, an image, a flag, a checkpoint): the scripts print its message as
    one line on stderr and exit non-zero, without a traceback."""


class Interrupted(Exception):
    """Ctrl-C during training, after the checkpoint was saved; the message says how to go on."""


def first_line(exc: object, limit: int = 160) -> str:
    """An exception (or any message) as the one line a UserError quotes: its first line, cut at
    ``limit`` characters; the exception's type when it has no message."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def quoted(name: object) -> str:
    """A name (a file, an image) as printed among data: as it is, or quoted as ``repr`` quotes it when it
    holds a control character, so that a line such as "wrote <name>: ..." stays one line for whoever reads it."""
    text = str(name)
    return repr(text) if _CONTROL.search(text) else text


def escaped(text: str) -> str:
    """``text`` with each control character written as its escape (a newline as \\n): a message stays one line."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def failure_line(name: object, exc: BaseException) -> str:
    """One line naming a file and what went wrong with it, whatever the exception (a batch
    reports it and goes on): a UserError's own message, memory, an OS error, or a bug's type."""
    name = quoted(name)
    if isinstance(exc, UserError):
        return str(exc) if name in str(exc) else f"{name}: {exc}"
    if isinstance(exc, MemoryError):
        return f"{name}: out of memory ({first_line(exc) if str(exc).strip() else 'MemoryError'})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: {exc.strerror}"
    text = str(exc).strip().splitlines()
    return f"{name}: {type(exc).__name__}" + (f": {text[0]}" if text else "")


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut at ``limit`` characters, for a message that quotes what a file holds."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int over 4300 digits; nesting is bounded before anything is shown
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
