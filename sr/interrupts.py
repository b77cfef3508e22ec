"""Ctrl-C that waits until a file is written."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT while the block runs and deliver it afterwards.

    A KeyboardInterrupt raised inside ``torch.save`` can come out of its C++ writer as a
    RuntimeError, and one between two related writes (``last.pth``, then ``best.pth`` and
    the metrics row) leaves them disagreeing; a write takes milliseconds, so waiting costs nothing.
    Signal handlers belong to the main thread: elsewhere the block runs unguarded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if received:
        signal.raise_signal(signal.SIGINT)  # whatever handler was there now runs, usually KeyboardInterrupt
