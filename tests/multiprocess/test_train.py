"""`lta train` as 2 real processes on localhost equals the 1-process run.

Both runs cut the data into 2 seqio shards (train.data_shards=2): the
2-process job reads one shard per process and assembles each global batch
from the processes' halves; the 1-process run reads both shards and puts
their batches side by side. Same global batches and seed, so the same
adapter, up to the order of float sums across devices.
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
from tests.trainer import test_kill_resume as single_process

TINY_GIN = os.path.join(processes.cli_run.REPO, "tests", "trainer",
                        "tiny_run.gin")
STEPS = 6


def train(model_dir: str, num_processes: int, steps: int = STEPS,
          *flags: str) -> processes.Job:
  """The tiny run, its data cut into 2 shards, as `num_processes`."""
  return processes.Job("lta.cli.train", [
      f"--gin_file={TINY_GIN}", f"--gin.TRAIN_STEPS={steps}",
      "--gin.train.checkpoint_period=2", "--gin.train.data_shards=2",
      f'--gin.MODEL_DIR="{model_dir}"', *flags], num_processes)


def _last_checkpoint(model_dir: str):
  step, state, data, _ = single_process._last_checkpoint(model_dir)  # pylint: disable=protected-access
  return step, single_process._flat(state), data  # pylint: disable=protected-access


def assert_close(got: dict, want: dict, what: str):
  assert sorted(got) == sorted(want), what
  for key, value in want.items():
    assert got[key].shape == value.shape, f"{what} {key}"
    np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5,
                               err_msg=f"{what} {key}")


def logged_tokens(model_dir: str) -> dict[int, float]:
  """step -> 'tokens' in process 0's TensorBoard events (all its runs)."""
  tokens = {}
  for path in glob.glob(os.path.join(model_dir, "train", "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "tokens":
          tokens[event.step] = float(tf.make_ndarray(value.tensor))
  return tokens


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(1-process dir, its output, 2-process dir, its output)."""
  tmp_path = tmp_path_factory.mktemp("train")
  one_dir, two_dir = str(tmp_path / "one"), str(tmp_path / "two")
  one, two = train(one_dir, 1), train(two_dir, 2)
  try:
    two_output, one_output = two.finish(), one.finish()
  finally:
    two.kill()
    one.kill()
  return one_dir, one_output, two_dir, two_output


def test_two_process_train_equals_one_process(runs):
  one_dir, one_output, two_dir, two_output = runs
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
  one_dir, _, two_dir, _ = runs
  tokens = logged_tokens(two_dir)
  assert sorted(tokens) == list(range(1, STEPS + 1))
  assert tokens == logged_tokens(one_dir)
