"""`python -m tests.multiprocess.faults MODULE ARGS...`: runs MODULE as
`python -m MODULE ARGS...`, with one process of the job misbehaving.

The process whose LTA_PROCESS_ID is LTA_TEST_FAULTY_PROCESS
- sleeps LTA_TEST_SLOW_START_S seconds when `lta train` starts building its
  model (lta.train.steps.init_variables): after it joined the job, before
  any collective of start-up. Its peers meanwhile reach their first
  collective alone, as when one host loads or compiles much slower;
- sleeps before it saves the checkpoint of a step, as LTA_TEST_SLOW_SAVE
  ("STEP:SECONDS") says (lta.train.loop._save): its peers start orbax's
  save, and its syncs, alone;
- SIGKILLs itself once it has written its part of the checkpoint of step
  LTA_TEST_KILL_BEFORE_COMMIT, before orbax commits it (orbax's background
  save thread, before its barrier with the other processes);
- sleeps LTA_TEST_SLOW_EXIT_S seconds once its training loop has ended,
  before it exports and exits (lta.train.loop._export): its peers reach
  their exit first.
"""

import os
import runpy
import signal
import sys
import time

from orbax.checkpoint._src.checkpointers import async_checkpointer

from lta import partitioning
from lta.train import loop
from lta.train import steps

FAULTY_PROCESS_ENV = "LTA_TEST_FAULTY_PROCESS"
SLOW_START_ENV = "LTA_TEST_SLOW_START_S"
KILL_BEFORE_COMMIT_ENV = "LTA_TEST_KILL_BEFORE_COMMIT"
SLOW_SAVE_ENV = "LTA_TEST_SLOW_SAVE"
SLOW_EXIT_ENV = "LTA_TEST_SLOW_EXIT_S"


def _say(message: str) -> None:
  print(f"faults: process {os.environ[partitioning.ENV_PROCESS_ID]} "
        f"{message}", flush=True)


def _delayed(function, delay_s: float, before: str):
  """`function`, called after a sleep of `delay_s` seconds."""
  def delayed(*args, **kwargs):
    _say(f"sleeps {delay_s:g} s {before}")
    time.sleep(delay_s)
    return function(*args, **kwargs)
  return delayed


def _slow_to_save(save, step: int, delay_s: float):
  def delayed(ckpt, at_step, *args, **kwargs):
    if at_step == step:
      _say(f"sleeps {delay_s:g} s before saving step {step}")
      time.sleep(delay_s)
    return save(ckpt, at_step, *args, **kwargs)
  return delayed


def _killed_before_commit(wait_then_commit, step: str):
  """orbax's background save: wait for this process's writes, then the
  barrier, then (process 0) the commit."""
  def killed(directory, commit_futures, *args, **kwargs):
    if directory.name == step:
      for written in commit_futures:
        written.result()
      _say(f"wrote its part of step {step}; SIGKILL before the commit")
      os.kill(os.getpid(), signal.SIGKILL)
    return wait_then_commit(directory, commit_futures, *args, **kwargs)
  return killed


def main() -> None:
  env = os.environ
  if env.get(partitioning.ENV_PROCESS_ID) == env.get(FAULTY_PROCESS_ENV):
    if float(env.get(SLOW_START_ENV, 0)):
      steps.init_variables = _delayed(steps.init_variables,
                                      float(env[SLOW_START_ENV]),
                                      "before building its model")
    if env.get(SLOW_SAVE_ENV):
      step, delay_s = env[SLOW_SAVE_ENV].split(":")
      loop._save = _slow_to_save(loop._save, int(step), float(delay_s))  # pylint: disable=protected-access
    if float(env.get(SLOW_EXIT_ENV, 0)):
      loop._export = _delayed(loop._export, float(env[SLOW_EXIT_ENV]),  # pylint: disable=protected-access
                              "before it exports and exits")
    if env.get(KILL_BEFORE_COMMIT_ENV):
      # pylint: disable=protected-access
      async_checkpointer._background_wait_for_commit_futures = (
          _killed_before_commit(
              async_checkpointer._background_wait_for_commit_futures,
              env[KILL_BEFORE_COMMIT_ENV]))
  module, sys.argv = sys.argv[1], sys.argv[1:]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
