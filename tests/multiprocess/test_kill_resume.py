"""2-process `lta train`: SIGKILL one process mid-run, restart both.

Process 1 dies once it has written its part of step 4's checkpoint,
before orbax commits it (tests/multiprocess/faults.py). The survivor
cannot go on without its peer: its watchdog stops it
(lta.partitioning.EXIT_PEER_LOST), as tests/multiprocess/test_peer_lost.py
checks in detail, with what is left on disk. The restarted job resumes
from the last committed checkpoint, step 2, and ends with the adapter of
an uninterrupted run (the 1-process run with data_shards=2, up to the
order of float sums).
"""

import os
import signal

import pytest

from lta import partitioning
from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from lta.checkpoints import orbax_ckpt
from tests.multiprocess import faults
from tests.multiprocess import test_train

STEPS = 8
KILLED_AT = 4  # checkpoints every 2 steps
# Long enough that a process starved of CPU on a loaded machine is not
# taken for dead before the kill.
HEARTBEAT_S = 20


@pytest.mark.slow  # about 2 minutes on 2 busy cores
def test_sigkill_one_process_then_restart_both(tmp_path):
  model_dir, reference_dir = str(tmp_path / "two"), str(tmp_path / "one")
  reference = test_train.train(reference_dir, 1, STEPS)
  jobs = [reference, test_train.train(
      model_dir, 2, STEPS,
      f"--gin.initialize_distributed.heartbeat_timeout_seconds={HEARTBEAT_S}",
      faults_of_process_1={faults.KILL_BEFORE_COMMIT_ENV: str(KILLED_AT)})]
  try:
    try:
      jobs[1].processes[1].wait_for_line(
          f"faults: process 1 wrote its part of step {KILLED_AT}")
    except AssertionError:
      raise AssertionError(f"not killed as planned:\n{jobs[1].output}")
    # the survivor is killed if it hangs
    codes = jobs[1].wait(timeout=HEARTBEAT_S + 60)
    assert codes == [partitioning.EXIT_PEER_LOST, -signal.SIGKILL], (
        jobs[1].output)
    assert not os.path.exists(os.path.join(model_dir, "adapter"))

    jobs.append(test_train.train(model_dir, 2, STEPS))
    output = jobs[2].finish()
    assert output.count(f"Finished at step {STEPS}") == 2
    # Step 4 was never committed: the rerun resumes from step 2.
    assert (f"Resuming from {model_dir}/{orbax_ckpt.SUBDIR}/{KILLED_AT - 2} "
            "at its saved input position") in output
    reference.finish()
  finally:
    for job in jobs:
      job.kill()
  got, _ = adapter_io.load_adapter(os.path.join(model_dir, "adapter"))
  want, _ = adapter_io.load_adapter(os.path.join(reference_dir, "adapter"))
  test_train.assert_close(flatten_tree(got), flatten_tree(want),
                          "exported adapter")
