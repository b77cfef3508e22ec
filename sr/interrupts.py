"""Ctrl-C (and ``kill``'s SIGTERM, treated alike) that waits until a file is written."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


# SIGTERM is what ``kill``, schedulers and container stops send. Treated as Ctrl-C, it saves a
# resumable checkpoint too; it also reaches runs started in the background with ``nohup ... &``,
# where the shell has set SIGINT to be ignored.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_sigterm_as_on_ctrl_c() -> None:
    """Make SIGTERM raise KeyboardInterrupt, as Ctrl-C does (main thread only; elsewhere nothing)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs and deliver them afterwards.

    A KeyboardInterrupt raised inside ``torch.save`` can come out of its C++ writer as a
    RuntimeError, and one between two related writes (``last.pth``, then ``best.pth`` and
    the metrics row) leaves them disagreeing; a write takes milliseconds, so waiting costs nothing.
    Signal handlers belong to the main thread: elsewhere the block runs unguarded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        # Here, not after the block: a block that raised must not drop the stop it held back.
        # The KeyboardInterrupt then carries the block's exception as its __context__.
        if received:
            signal.raise_signal(received[0])  # whatever handler was there now runs, usually KeyboardInterrupt
