"""seqio batches: deterministic, resumable by skipping, sharded per host."""

import collections

import numpy as np
import pytest

from lta import input_pipeline
from tests.trainer import fixture_task


def _batches(n, **kwargs):
  ds = input_pipeline.get_dataset(fixture_task.TASK, fixture_task.LENGTHS, 4,
                                  **kwargs)
  return list(input_pipeline.numpy_batches(ds.take(n)))


def test_same_seed_same_batches_and_skip_resumes_exactly():
  a = _batches(6, seed=3)
  b = _batches(6, seed=3)
  resumed = _batches(2, seed=3, start_batch=4)
  other_seed = _batches(1, seed=4)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  for x, y in zip(a[4:], resumed):
    np.testing.assert_array_equal(x["encoder_input_tokens"],
                                  y["encoder_input_tokens"])
  assert not np.array_equal(a[0]["encoder_input_tokens"],
                            other_seed[0]["encoder_input_tokens"])
  assert set(a[0]) == set(input_pipeline.MODEL_FEATURES)
  assert a[0]["encoder_input_tokens"].shape == (4, 32)
  assert a[0]["decoder_target_tokens"].shape == (4, 16)


def test_hosts_read_disjoint_shards():
  n = fixture_task.NUM_EXAMPLES["validation"] // 2 // 4  # batches per host
  rows = []
  for index in (0, 1):
    batches = _batches(n, split="validation", shuffle=False, num_epochs=1,
                       shard=(index, 2))
    rows.append(collections.Counter(
        tuple(r) for b in batches for r in b["encoder_input_tokens"]))
  everything = _batches(2 * n, split="validation", shuffle=False,
                        num_epochs=1, shard=(0, 1))
  all_rows = collections.Counter(
      tuple(r) for b in everything for r in b["encoder_input_tokens"])
  # Together the two hosts read every example exactly once (the fixture
  # repeats some inputs, hence multisets).
  assert sum(rows[0].values()) == sum(rows[1].values()) == 4 * n
  assert rows[0] + rows[1] == all_rows


def test_unregistered_task_is_named():
  with pytest.raises(ValueError, match="MIXTURE_OR_TASK_NAME='nope.xx'"):
    input_pipeline.get_dataset("nope.xx", fixture_task.LENGTHS, 4)


def test_unimportable_task_module_is_named():
  with pytest.raises(ImportError, match="MIXTURE_OR_TASK_MODULE 'no_such_mod"):
    input_pipeline.import_task_modules("no_such_module_xyz")
