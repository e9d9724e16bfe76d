"""When one process of a job dies, the others stop, saying which one.

A SIGKILLed process sends no more heartbeats; JAX's coordination service
(in process 0) drops it from its live set and lta's watchdog in every other
process prints one line naming it and exits with EXIT_PEER_LOST, instead
of hanging in a collective. (When process 0, the coordinator, is killed,
JAX's own error polling aborts the others first, with a stack trace.)
"""

import re
import signal
import time

from lta import partitioning
from tests.multiprocess import test_train

HEARTBEAT_S = 5
# The survivor notices within the heartbeat timeout plus the watchdog's
# poll; the rest is slack for 2 busy cores.
STOPS_WITHIN_S = HEARTBEAT_S + 40


def _kill_one(tmp_path, victim: int) -> tuple[int, str]:
  """A 2-process run; `victim` is SIGKILLed at step 2: (the survivor's
  exit code, its output)."""
  # test_train's run (its compiled programs are cached), stopped at step 2
  # of 6: its next step needs the victim.
  job = test_train.train(
      str(tmp_path), 2, test_train.STEPS,
      f"--gin.initialize_distributed.heartbeat_timeout_seconds={HEARTBEAT_S}")
  try:
    job.processes[0].wait_for_line(f"step 2/{test_train.STEPS}")
    job.processes[victim].proc.send_signal(signal.SIGKILL)
    survivor = job.processes[1 - victim]
    code = survivor.wait(time.time() + STOPS_WITHIN_S)
  finally:
    job.kill()
  return code, survivor.output


def test_a_killed_process_stops_the_others_with_one_line(tmp_path):
  code, output = _kill_one(tmp_path, victim=1)
  assert code == partitioning.EXIT_PEER_LOST, output
  lines = [l for l in output.splitlines() if l.startswith("lta: ")]
  assert len(lines) == 1, output
  assert re.fullmatch(
      rf"lta: process 1 of 2 sent no heartbeat for {HEARTBEAT_S} s \(killed "
      rf"or crashed\?\); stopping process 0 too \(exit "
      rf"{partitioning.EXIT_PEER_LOST}\)\. Rerun the job to resume from its "
      r"last checkpoint\.", lines[0]), lines[0]
  assert "Traceback" not in output and "Check failure" not in output
