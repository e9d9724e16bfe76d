"""`lta train` as 2 real processes on localhost equals the 1-process run.

Both runs cut the data into 2 seqio shards (train.data_shards=2): the
2-process job reads one shard per process and assembles each global batch
from the processes' halves; the 1-process run reads both shards and puts
their batches side by side. Same global batches and seed, so the same
adapter, up to the order of float sums across devices.

The 2-process job is also made hard in three ways, at no extra run:
process 1 starts building its model SLOW_START_S after process 0 (longer
than gloo's fixed 30 s wait at a collective), it starts saving step
SLOW_SAVE_STEP SLOW_START_S after process 0, and both runs evaluate at
their last step on 17 validation examples, which the 2 processes read as
shards of 9 and 8 (3 and 2 host batches, the last ones partial).
"""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from lta.checkpoints import orbax_ckpt
from tests.multiprocess import processes
from tests.multiprocess import faults
from tests.trainer import fixture_task
from tests.trainer import test_kill_resume as single_process

TINY_GIN = os.path.join(processes.cli_run.REPO, "tests", "trainer",
                        "tiny_run.gin")
STEPS = 6
SLOW_START_S = 40
SLOW_SAVE_STEP = 4
# The fixture task's training data; eval at the last step on 17 examples.
UNEVEN_EVAL = (f'--gin.MIXTURE_OR_TASK_NAME="{fixture_task.UNEVEN_EVAL_TASK}"',
               f"--gin.train.eval_period={STEPS}")


def train(model_dir: str, num_processes: int, steps: int = STEPS,
          *flags: str, faults_of_process_1=None) -> processes.Job:
  """The tiny run, its data cut into 2 shards, as `num_processes`;
  process 1 misbehaves as `faults_of_process_1` ({tests.multiprocess.faults
  variable: value}) says."""
  args = [f"--gin_file={TINY_GIN}", f"--gin.TRAIN_STEPS={steps}",
          "--gin.train.checkpoint_period=2", "--gin.train.data_shards=2",
          f'--gin.MODEL_DIR="{model_dir}"', *flags]
  if not faults_of_process_1:
    return processes.Job("lta.cli.train", args, num_processes)
  return processes.Job(
      "tests.multiprocess.faults", ["lta.cli.train", *args], num_processes,
      env={faults.FAULTY_PROCESS_ENV: "1", **faults_of_process_1})


def _last_checkpoint(model_dir: str):
  step, state, data, _ = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
  return step, single_process._flat(state), data  # pylint: disable=protected-access


def assert_close(got: dict, want: dict, what: str):
  assert sorted(got) == sorted(want), what
  for key, value in want.items():
    assert got[key].shape == value.shape, f"{what} {key}"
    np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5,
                               err_msg=f"{what} {key}")


def logged_scalars(model_dir: str, tag: str,
                   subdir: str = "train") -> dict[int, float]:
  """step -> `tag` in process 0's TensorBoard events (all its runs)."""
  scalars = {}
  for path in glob.glob(os.path.join(model_dir, subdir, "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          scalars[event.step] = float(tf.make_ndarray(value.tensor))
  return scalars


def logged_tokens(model_dir: str) -> dict[int, float]:
  return logged_scalars(model_dir, "tokens")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(1-process dir, its output, 2-process dir, its output, the 2
  processes)."""
  tmp_path = tmp_path_factory.mktemp("train")
  one_dir, two_dir = str(tmp_path / "one"), str(tmp_path / "two")
  one = train(one_dir, 1, STEPS, *UNEVEN_EVAL)
  two = train(two_dir, 2, STEPS, *UNEVEN_EVAL, faults_of_process_1={
      faults.SLOW_START_ENV: str(SLOW_START_S),
      faults.SLOW_SAVE_ENV: f"{SLOW_SAVE_STEP}:{SLOW_START_S}"})
  try:
    two_output, one_output = two.finish(), one.finish()
  finally:
    two.kill()
    one.kill()
  return one_dir, one_output, two_dir, two_output, two.processes


def test_two_process_train_equals_one_process(runs):
  one_dir, one_output, two_dir, two_output, _ = runs
  assert f"Finished at step {STEPS}" in one_output
  assert two_output.count(f"Finished at step {STEPS}") == 2
  assert "mesh {'data': 2, 'model': 1}" in two_output

  got, got_manifest = adapter_io.load_adapter(os.path.join(two_dir,
                                                           "adapter"))
  want, want_manifest = adapter_io.load_adapter(os.path.join(one_dir,
                                                             "adapter"))
  assert_close(flatten_tree(got), flatten_tree(want), "exported adapter")
  assert got_manifest.config == want_manifest.config
  assert got_manifest.base_model_fingerprint == (
      want_manifest.base_model_fingerprint)

  step, state, data = _last_checkpoint(two_dir)
  want_step, want_state, want_data = _last_checkpoint(one_dir)
  assert step == want_step == STEPS
  assert_close(state, want_state, "last checkpoint")
  assert data == {**want_data, "process_count": 2}
  iterator_dir = os.path.join(two_dir, orbax_ckpt.SUBDIR, str(STEPS),
                              orbax_ckpt.ITERATOR)
  assert {f.split(".")[0] for f in os.listdir(iterator_dir)
          if f.startswith("process_")} == {"process_0-of-2",
                                           "process_1-of-2"}


def test_two_processes_log_the_global_batches_token_counts(runs):
  """Each process counts its half of a batch; the log shows the sum."""
  one_dir, _, two_dir, _, _ = runs
  tokens = logged_tokens(two_dir)
  assert sorted(tokens) == list(range(1, STEPS + 1))
  assert tokens == logged_tokens(one_dir)


def test_a_process_slow_to_start_is_waited_for(runs):
  """Process 0 waits for process 1's model at start-up barriers, not in a
  gloo collective (which gives up after 30 s): the job finishes, with the
  1-process adapter (test_two_process_train_equals_one_process)."""
  *_, (first, slow) = runs
  asleep = slow.wait_for_line("faults: process 1 sleeps")
  trained = first.wait_for_line(f"step 1/{STEPS}")
  # Process 0 could not train before process 1 woke up and built its model.
  assert first.times[trained] - slow.times[asleep] > SLOW_START_S > 30
  assert "faults:" not in first.output


def test_a_process_slow_to_save_is_waited_for(runs):
  """Past the first collective, gloo waits longer than its 30 s start-up
  limit: process 0 waits for process 1, late to save step SLOW_SAVE_STEP
  (orbax's syncs, then step SLOW_SAVE_STEP + 1), and the job finishes with
  the 1-process adapter and last checkpoint
  (test_two_process_train_equals_one_process)."""
  *_, (first, slow) = runs
  asleep = slow.wait_for_line(
      f"faults: process 1 sleeps {SLOW_START_S} s before saving step "
      f"{SLOW_SAVE_STEP}")
  after = first.wait_for_line(f"step {SLOW_SAVE_STEP + 1}/{STEPS}")
  assert first.times[after] - slow.times[asleep] > SLOW_START_S > 30
  assert first.output.count(f"Finished at step {STEPS}") == 1


def test_uneven_eval_shards_give_the_one_process_eval_metrics(runs):
  """Shards of 9 and 8 examples in host batches of 4: process 1 runs a
  padding batch in step 3. Every example counts once, as in 1 process."""
  one_dir, _, two_dir, two_output, _ = runs
  assert f"step {STEPS}/{STEPS} | eval loss" in two_output
  targets = fixture_task.examples("validation")[
      :fixture_task.UNEVEN_EVAL_EXAMPLES]
  want_tokens = sum(len(t["targets"].encode()) + 1 for t in targets)  # EOS
  for model_dir in (one_dir, two_dir):
    assert logged_scalars(model_dir, "num_tokens", "eval") == {
        STEPS: want_tokens}
  for tag in ("loss", "cross_entropy", "accuracy"):
    got = logged_scalars(two_dir, tag, "eval")
    want = logged_scalars(one_dir, tag, "eval")
    assert sorted(got) == sorted(want) == [STEPS], tag
    np.testing.assert_allclose(got[STEPS], want[STEPS], rtol=1e-5,
                               err_msg=tag)
