"""Stopping a training run cleanly: signal -> checkpoint -> exit code 75.

SIGTERM (a TPU preemption, a scheduler's notice) and SIGINT (Ctrl-C) both
ask the loop to finish its step, save a checkpoint and return; `lta train`
then exits with EXIT_PREEMPTED. A second Ctrl-C aborts without saving.
Multi-host runs leave SIGTERM to JAX's preemption sync point (every host
must stop at the same step) and Ctrl-C to Python's default.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

import jax

from lta import errors

EXIT_PREEMPTED = errors.EXIT_PREEMPTED  # 75: checkpointed, rerun to resume

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Within `with`, SIGTERM/SIGINT set `signal_name` instead of killing."""

  def __init__(self):
    self.signal_name: Optional[str] = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def __enter__(self) -> "StopRequest":
    if (threading.current_thread() is threading.main_thread() and
        jax.process_count() == 1):
      for signum in _SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.requested:
      if signum == signal.SIGINT:
        raise KeyboardInterrupt  # the second Ctrl-C: abort, do not save
      return
    self.signal_name = signal.Signals(signum).name
    # os.write, not print: the handler may interrupt a print to stdout.
    os.write(2, (f"{self.signal_name}: saving a checkpoint after this step, "
                 "then exiting (Ctrl-C again aborts without saving)\n"
                 ).encode())

  def __exit__(self, *exc) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
