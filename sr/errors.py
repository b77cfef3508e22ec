"""The one exception type for problems with what the user gave us."""


class UserError(Exception):
    """Bad input (a path, an image, a flag, a checkpoint): the scripts print its message as
    one line on stderr and exit non-zero, without a traceback."""


class Interrupted(Exception):
    """Ctrl-C during training, after the checkpoint was saved; the message says how to go on."""
