"""2-process `lta train`: SIGKILL one process mid-run, restart both.

The survivor cannot go on without its peer: its watchdog stops it
(lta.partitioning.EXIT_PEER_LOST), as tests/multiprocess/test_peer_lost.py
checks in detail. The restarted job
resumes from the last committed checkpoint and ends with the adapter of
an uninterrupted run (the 1-process run with data_shards=2, up to the
order of float sums).
"""

import os
import signal

import pytest

from lta import partitioning
from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from tests.multiprocess import test_train

STEPS = 8


@pytest.mark.slow  # about 2 minutes on 2 busy cores
def test_sigkill_one_process_then_restart_both(tmp_path):
  model_dir, reference_dir = str(tmp_path / "two"), str(tmp_path / "one")
  reference = test_train.train(reference_dir, 1, STEPS)
  jobs = [reference, test_train.train(
      model_dir, 2, STEPS,
      "--gin.initialize_distributed.heartbeat_timeout_seconds=5")]
  try:
    survivor, victim = jobs[1].processes
    # Steps 2 and 4 were saved; a multi-process save commits once every
    # process has written it, so step 2 at least is committed by now.
    survivor.wait_for_line(f"step 5/{STEPS}")
    victim.proc.send_signal(signal.SIGKILL)
    codes = jobs[1].wait(timeout=60)  # the survivor is killed if it hangs
    assert codes == [partitioning.EXIT_PEER_LOST, -signal.SIGKILL], (
        jobs[1].output)
    assert not os.path.exists(os.path.join(model_dir, "adapter"))

    jobs.append(test_train.train(model_dir, 2, STEPS))
    output = jobs[2].finish()
    assert output.count(f"Finished at step {STEPS}") == 2
    assert f"Resuming from {model_dir}/checkpoints/" in output
    reference.finish()
  finally:
    for job in jobs:
      job.kill()
  got, _ = adapter_io.load_adapter(os.path.join(model_dir, "adapter"))
  want, _ = adapter_io.load_adapter(os.path.join(reference_dir, "adapter"))
  test_train.assert_close(flatten_tree(got), flatten_tree(want),
                          "exported adapter")
