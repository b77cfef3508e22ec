import os
import signal

import pytest

from sr.interrupts import deferred_interrupt


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
