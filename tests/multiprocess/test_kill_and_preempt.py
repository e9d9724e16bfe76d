"""A 2-process `lta train` that loses a process, then is preempted, ends
with the adapter of an uninterrupted run.

One job, three runs in its model directory:

1. SIGKILL. A SIGKILLed process sends no more heartbeats; JAX's
   coordination service (in process 0) drops it from its live set and
   lta's watchdog in every other process prints one line naming it and
   exits with EXIT_PEER_LOST, instead of hanging in a collective. (When
   process 0, the coordinator, is killed, JAX's own error polling aborts
   the others first, with a stack trace.) The victim dies at the worst
   moment for a checkpoint: it has written its part of step 4 (its state
   shards and input position), and orbax's commit waits for every process
   first, so process 0 never commits step 4; the last checkpoint is still
   step 2.
2. Restarted, both processes resume from step 2. A SIGTERM to one of them
   (a preemption) reaches JAX's preemption sync point, which tells every
   process the step to stop at, so both save that step into one orbax
   checkpoint (each its part of the state and its input position) and
   exit 75. Process 1 is slow to leave (it sleeps after its loop), so
   process 0, the coordinator, reaches its exit first: it must wait for
   process 1 there, or JAX's error polling aborts process 1 (SIGABRT).
3. Restarted again, both resume at that step and finish with the adapter
   of the uninterrupted 1-process run with data_shards=2 (up to the order
   of float sums), and the same logged global token counts, step by step.
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
from lta.train import preemption
from tests.multiprocess import faults
from tests.multiprocess import test_train
from tests.trainer import test_kill_resume as single_process

HEARTBEAT_S = 5
# The survivor notices within the heartbeat timeout plus the watchdog's
# poll; the rest is slack for 2 busy cores.
STOPS_WITHIN_S = HEARTBEAT_S + 40
KILLED_AT = 4  # checkpoints every 2 steps: 2 is committed, 4 is not
# Room for the preemption after the resume from step 2, before the end.
STEPS = 12


@pytest.fixture(scope="module")
def killed_job(tmp_path_factory):
  """(model dir, the survivor's exit code, its output, the victim's)."""
  model_dir = str(tmp_path_factory.mktemp("killed"))
  job = test_train.train(
      model_dir, 2, STEPS,
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
  # What a rerun resumes from (the tests below rerun the job): step 2, the
  # uncommitted step 4 cleaned away.
  step, _, data, _ = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
  assert step == 2 and data["consumed_batches"] == 2
  assert sorted(os.listdir(steps_dir)) == ["2"]


@pytest.fixture(scope="module")
def preempted_job(killed_job, tmp_path_factory):
  """(model dir, both exit codes, the job, the uninterrupted run's job and
  dir).

  Requested after the tests above have read what the kill left on disk."""
  model_dir = killed_job[0]
  reference_dir = str(tmp_path_factory.mktemp("uninterrupted"))
  reference = test_train.train(reference_dir, 1, STEPS)
  job = test_train.train(model_dir, 2, STEPS,
                         faults_of_process_1={faults.SLOW_EXIT_ENV: "10"})
  try:
    first, victim = job.processes
    first.wait_for_line(f"step {KILLED_AT - 1}/{STEPS}")
    victim.proc.send_signal(signal.SIGTERM)
    codes = job.wait()
  except BaseException:
    reference.kill()
    raise
  finally:
    job.kill()
  return model_dir, codes, job, reference, reference_dir


def test_the_restart_resumes_from_the_last_checkpoint(preempted_job):
  model_dir, _, job, *_ = preempted_job
  assert (f"Resuming from {model_dir}/{orbax_ckpt.SUBDIR}/{KILLED_AT - 2} "
          "at its saved input position") in job.processes[0].output, job.output


def test_sigterm_to_one_process_stops_both_at_one_checkpoint(preempted_job):
  model_dir, codes, job, *_ = preempted_job
  assert codes == [preemption.EXIT_PREEMPTED] * 2, job.output
  assert "sleeps 10 s before it exports" in job.processes[1].output
  step, _, data, run = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
  assert KILLED_AT - 1 <= step < STEPS
  for i, process in enumerate(job.processes):
    assert (f"saved a checkpoint at step {step} in {model_dir}/"
            f"{orbax_ckpt.SUBDIR} (process {i} of 2)") in process.output
  iterator_dir = os.path.join(model_dir, orbax_ckpt.SUBDIR, str(step),
                              orbax_ckpt.ITERATOR)
  assert {f.split(".")[0] for f in os.listdir(iterator_dir)
          if f.startswith("process_")} == {"process_0-of-2", "process_1-of-2"}
  assert data["consumed_batches"] == step
  assert run["manifest"]["adapter"]["kind"] == "lora"
  assert not os.path.exists(os.path.join(model_dir, "adapter"))


@pytest.fixture(scope="module")
def finished_job(preempted_job):
  """(model dir, the last run's output, the preemption's step, the
  uninterrupted run's dir)."""
  model_dir, _, _, reference, reference_dir = preempted_job
  step, *_ = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
  job = test_train.train(model_dir, 2, STEPS)
  try:
    output = job.finish()
    reference.finish()
  finally:
    job.kill()
    reference.kill()
  return model_dir, output, step, reference_dir


def test_the_second_restart_resumes_at_the_preemption(finished_job):
  model_dir, output, step, _ = finished_job
  assert output.count(f"Finished at step {STEPS}") == 2, output
  assert (f"Resuming from {model_dir}/{orbax_ckpt.SUBDIR}/{step} "
          "at its saved input position") in output, output


def test_the_job_ends_with_the_uninterrupted_adapter(finished_job):
  model_dir, _, _, reference_dir = finished_job
  got, got_manifest = adapter_io.load_adapter(os.path.join(model_dir,
                                                           "adapter"))
  want, want_manifest = adapter_io.load_adapter(os.path.join(reference_dir,
                                                             "adapter"))
  test_train.assert_close(flatten_tree(got), flatten_tree(want),
                          "exported adapter")
  assert (got_manifest.base_model_fingerprint ==
          want_manifest.base_model_fingerprint)
  # Same global batches, so the same token counts, step by step, over the
  # three runs.
  tokens = test_train.logged_tokens(model_dir)
  assert sorted(tokens) == list(range(1, STEPS + 1))
  assert tokens == test_train.logged_tokens(reference_dir)
