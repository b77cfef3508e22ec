import os
import signal

import pytest

from sr.interrupts import deferred_interrupt, stop_on_sigterm_as_on_ctrl_c


def test_ctrl_c_inside_the_block_arrives_after_it():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("finished the write")
        steps.append("not reached")
    assert steps == ["finished the write"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_quiet_block_changes_nothing():
    with deferred_interrupt():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_is_held_and_delivered_like_ctrl_c(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm_as_on_ctrl_c()
        steps = []
        with pytest.raises(KeyboardInterrupt):
            with deferred_interrupt():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("finished the write")
            steps.append("not reached")
        assert steps == ["finished the write"]
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_ignored_sigint_stays_ignored_after_a_block():
    # A run started with `nohup ... &` has SIGINT ignored: a SIGINT during a write changes nothing.
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
