"""SIGTERM and Ctrl-C ask for a checkpointed stop; a second Ctrl-C aborts.

The whole `lta train` process is stopped, resumed and checked in
test_kill_resume.py; this is the signal handling alone, in this process.
"""

import os
import signal

import pytest

from lta.train import preemption


def test_a_signal_requests_a_stop_and_a_second_ctrl_c_aborts(capfd):
  before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  with preemption.StopRequest() as stop:
    assert not stop.requested
    os.kill(os.getpid(), signal.SIGINT)  # handled before os.kill returns
    assert stop.signal_name == "SIGINT"
    os.kill(os.getpid(), signal.SIGTERM)  # already stopping: no change
    assert stop.signal_name == "SIGINT"
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  assert {s: signal.getsignal(s) for s in before} == before
  err = capfd.readouterr().err
  assert err == ("SIGINT: saving a checkpoint after this step, then exiting "
                 "(Ctrl-C again aborts without saving)\n")

