"""When one process of a job dies, the others stop, saying which one, and
the checkpoint it was saving is not committed.

A SIGKILLed process sends no more heartbeats; JAX's coordination service
(in process 0) drops it from its live set and lta's watchdog in every other
process prints one line naming it and exits with EXIT_PEER_LOST, instead
of hanging in a collective. (When process 0, the coordinator, is killed,
JAX's own error polling aborts the others first, with a stack trace.)

The victim dies at the worst moment for a checkpoint: it has written its
part of step 4 (its state shards and input position), and orbax's commit
waits for every process first, so process 0 never commits step 4; the
last checkpoint is still step 2. Restarted, both processes resume from
step 2 and end with the adapter of an uninterrupted run (the 1-process run
with data_shards=2, up to the order of float sums).
"""

import glob
import os
import re
import signal
import time

import pytest

from lta import partitioning
from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from lta.checkpoints import orbax_ckpt
from tests.multiprocess import faults
from tests.multiprocess import test_train
from tests.trainer import test_kill_resume as single_process

HEARTBEAT_S = 5
# The survivor notices within the heartbeat timeout plus the watchdog's
# poll; the rest is slack for 2 busy cores.
STOPS_WITHIN_S = HEARTBEAT_S + 40
KILLED_AT = 4  # checkpoints every 2 steps: 2 is committed, 4 is not


@pytest.fixture(scope="module")
def killed_job(tmp_path_factory):
  """(model dir, the survivor's exit code, its output, the victim's)."""
  model_dir = str(tmp_path_factory.mktemp("peer_lost"))
  job = test_train.train(
      model_dir, 2, test_train.STEPS,
      f"--gin.initialize_distributed.heartbeat_timeout_seconds={HEARTBEAT_S}",
      faults_of_process_1={faults.KILL_BEFORE_COMMIT_ENV: str(KILLED_AT)})
  survivor, victim = job.processes
  try:
    victim.wait_for_line("faults: process 1 wrote its part of step")
    code = survivor.wait(time.time() + STOPS_WITHIN_S)
    assert victim.wait(time.time() + 60) == -signal.SIGKILL, victim.output
  finally:
    job.kill()
  return model_dir, code, survivor.output, victim.output


def test_a_killed_process_stops_the_others_with_one_line(killed_job):
  _, code, output, _ = killed_job
  assert code == partitioning.EXIT_PEER_LOST, output
  lines = [l for l in output.splitlines() if l.startswith("lta: ")]
  assert len(lines) == 1, output
  assert re.fullmatch(
      rf"lta: process 1 of 2 sent no heartbeat for {HEARTBEAT_S} s \(killed "
      rf"or crashed\?\); stopping process 0 too \(exit "
      rf"{partitioning.EXIT_PEER_LOST}\)\. Rerun the job to resume from its "
      r"last checkpoint\.", lines[0]), lines[0]
  assert "Traceback" not in output and "Check failure" not in output


def test_a_process_killed_before_the_commit_leaves_the_last_checkpoint(
    killed_job):
  model_dir, _, _, victim_output = killed_job
  assert (f"wrote its part of step {KILLED_AT}; SIGKILL before the commit"
          in victim_output)
  steps_dir = os.path.join(model_dir, orbax_ckpt.SUBDIR)
  names = os.listdir(steps_dir)
  assert sorted(n for n in names if n.isdigit()) == ["2"], names
  # Step 4 was written by both processes (the victim's state shards and
  # input position are there, in orbax's temporary item directories) and
  # never committed.
  pending = [n for n in names if n.startswith(f"{KILLED_AT}.orbax-")]
  assert len(pending) == 1, names
  for item, victims_part in ((orbax_ckpt.ITERATOR, "process_1-of-2.index"),
                             (orbax_ckpt.STATE, "ocdbt.process_1")):
    assert glob.glob(os.path.join(steps_dir, pending[0], f"{item}.orbax-*",
                                  victims_part)), (item, victims_part)
  assert not os.path.exists(os.path.join(model_dir, "adapter"))
  # What a rerun resumes from (the next test reruns the job): step 2, the
  # uncommitted step 4 cleaned away.
  step, _, data, _ = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
  assert step == 2 and data["consumed_batches"] == 2
  assert sorted(os.listdir(steps_dir)) == ["2"]


@pytest.fixture(scope="module")
def restarted_job(killed_job, tmp_path_factory):
  """(the killed job's dir, the restart's output, the 1-process run's dir).

  Requested after the tests above have read what the kill left on disk."""
  model_dir = killed_job[0]
  reference_dir = str(tmp_path_factory.mktemp("uninterrupted"))
  jobs = [test_train.train(model_dir, 2, test_train.STEPS),
          test_train.train(reference_dir, 1, test_train.STEPS)]
  try:
    output = jobs[0].finish()
    jobs[1].finish()
  finally:
    for job in jobs:
      job.kill()
  return model_dir, output, reference_dir


def test_restarting_both_resumes_from_the_last_checkpoint(restarted_job):
  model_dir, output, _ = restarted_job
  assert output.count(f"Finished at step {test_train.STEPS}") == 2, output
  assert (f"Resuming from {model_dir}/{orbax_ckpt.SUBDIR}/{KILLED_AT - 2} "
          "at its saved input position") in output, output


def test_the_restarted_job_ends_with_the_uninterrupted_adapter(restarted_job):
  model_dir, _, reference_dir = restarted_job
  got, _ = adapter_io.load_adapter(os.path.join(model_dir, "adapter"))
  want, _ = adapter_io.load_adapter(os.path.join(reference_dir, "adapter"))
  test_train.assert_close(flatten_tree(got), flatten_tree(want),
                          "exported adapter")
