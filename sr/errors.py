"""The one exception type for problems with what the user gave us."""


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
