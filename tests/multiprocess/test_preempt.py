"""2-process `lta train`: SIGTERM to one process stops both.

JAX's preemption sync point tells every process of the job at which step
to stop, so both save the same step into one orbax checkpoint (each its
part of the state and its input position) and exit 75. Rerunning the job
resumes there and ends with the adapter of an uninterrupted run (the
1-process run with data_shards=2, up to the order of float sums). Along
the way the logged token counts are the global batches', not one
process's share.
"""

import os
import signal

import pytest

from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from lta.checkpoints import orbax_ckpt
from lta.train import preemption
from tests.multiprocess import test_train
from tests.trainer import test_kill_resume as single_process

STEPS = 12
# The preemption checkpoint is the only one before the end.
FLAGS = ("--gin.train.checkpoint_period=100",)


@pytest.mark.slow  # 3 jobs (5 processes): > 10 minutes on 2 busy cores
def test_sigterm_to_one_process_stops_both_at_one_checkpoint(tmp_path):
  model_dir, reference_dir = str(tmp_path / "two"), str(tmp_path / "one")
  reference = test_train.train(reference_dir, 1, STEPS, *FLAGS)
  jobs = [reference, test_train.train(model_dir, 2, STEPS, *FLAGS)]
  try:
    first, victim = jobs[1].processes
    first.wait_for_line(f"step 2/{STEPS}", timeout=1800)
    victim.proc.send_signal(signal.SIGTERM)
    codes = jobs[1].wait(timeout=900)
    assert codes == [preemption.EXIT_PREEMPTED] * 2, jobs[1].output

    # One checkpoint, complete, at the step where both processes stopped.
    step, _, data, run = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
    assert 2 <= step < STEPS
    for i, process in enumerate(jobs[1].processes):
      assert (f"saved a checkpoint at step {step} in {model_dir}/"
              f"{orbax_ckpt.SUBDIR} (process {i} of 2)") in process.output
    steps_dir = os.path.join(model_dir, orbax_ckpt.SUBDIR)
    assert sorted(os.listdir(steps_dir)) == [str(step)], os.listdir(steps_dir)
    iterator_dir = os.path.join(steps_dir, str(step), orbax_ckpt.ITERATOR)
    assert {f.split(".")[0] for f in os.listdir(iterator_dir)
            if f.startswith("process_")} == {"process_0-of-2",
                                             "process_1-of-2"}
    assert data["consumed_batches"] == step
    assert run["manifest"]["adapter"]["kind"] == "lora"
    assert not os.path.exists(os.path.join(model_dir, "adapter"))

    jobs.append(test_train.train(model_dir, 2, STEPS, *FLAGS))
    output = jobs[2].finish(timeout=1800)
    assert output.count(f"Finished at step {STEPS}") == 2
    assert f"Resuming from {model_dir}/{orbax_ckpt.SUBDIR}/{step}" in output
    reference.finish(timeout=1800)
  finally:
    for job in jobs:
      job.kill()
  got, got_manifest = adapter_io.load_adapter(os.path.join(model_dir,
                                                           "adapter"))
  want, _ = adapter_io.load_adapter(os.path.join(reference_dir, "adapter"))
  test_train.assert_close(flatten_tree(got), flatten_tree(want),
                          "exported adapter")
  assert got_manifest.base_model_fingerprint == (
      run["manifest"]["base_model_fingerprint"])
  # Same global batches, so the same token counts, step by step.
  tokens = test_train.logged_tokens(model_dir)
  assert sorted(tokens) == list(range(1, STEPS + 1))
  assert tokens == test_train.logged_tokens(reference_dir)
