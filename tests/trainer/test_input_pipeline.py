"""seqio batches: deterministic, resumable from a saved position, sharded."""

import collections

import numpy as np
import pytest

from lta import errors
from lta.data import input_pipeline
from tests.trainer import fixture_task


def _dataset(task=fixture_task.TASK, **kwargs):
  return input_pipeline.get_dataset(task, fixture_task.LENGTHS, 4, **kwargs)


def _batches(n, **kwargs):
  return list(input_pipeline.numpy_batches(_dataset(**kwargs).take(n)))


def test_same_seed_same_batches():
  a = _batches(3, seed=3)
  b = _batches(3, seed=3)
  other_seed = _batches(1, seed=4)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert not np.array_equal(a[0]["encoder_input_tokens"],
                            other_seed[0]["encoder_input_tokens"])
  assert set(a[0]) == set(input_pipeline.MODEL_FEATURES)
  assert a[0]["encoder_input_tokens"].shape == (4, 32)
  assert a[0]["decoder_target_tokens"].shape == (4, 16)


def test_a_restored_position_continues_exactly(tmp_path):
  batches = input_pipeline.TrainBatches(_dataset(seed=3))
  assert batches.unsaveable_reason is None
  for _ in range(3):
    next(batches)
  batches.save(str(tmp_path / "position"))
  want = [next(batches) for _ in range(3)]
  restored = input_pipeline.TrainBatches(_dataset(seed=3))
  restored.restore(str(tmp_path / "position"))
  for x, y in zip(want, [next(restored) for _ in range(3)]):
    assert set(x) == set(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_python_state_cannot_be_saved_and_says_why(monkeypatch, tmp_path):
  monkeypatch.setenv(fixture_task.READ_LOG_ENV, str(tmp_path / "reads"))
  ds = _dataset(fixture_task.LOGGED_PY_TASK)
  assert input_pipeline.unsaveable_reason(ds) == "PyFunc is stateful"
  assert input_pipeline.unsaveable_reason(
      _dataset(fixture_task.LOGGED_TASK)) is None


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


def test_one_host_reading_two_shards_sees_both_hosts_batches():
  """data_shards=2: a host's batch is the 2 hosts' batches side by side."""
  one = _batches(3, seed=5, data_shards=2, shard=(0, 1))
  halves = [input_pipeline.numpy_batches(input_pipeline.get_dataset(
      fixture_task.TASK, fixture_task.LENGTHS, 2, seed=5, shard=(i, 2)
  ).take(3)) for i in (0, 1)]
  for got, first, second in zip(one, *halves):
    for k in input_pipeline.MODEL_FEATURES:
      np.testing.assert_array_equal(got[k], np.concatenate([first[k],
                                                            second[k]]))
  with pytest.raises(ValueError, match="data_shards=3 must be a multiple"):
    _dataset(data_shards=3, shard=(0, 2))


def test_unregistered_task_is_named():
  with pytest.raises(ValueError, match="MIXTURE_OR_TASK_NAME='nope.xx'"):
    input_pipeline.get_dataset("nope.xx", fixture_task.LENGTHS, 4)


def test_unimportable_task_module_is_named():
  with pytest.raises(ImportError, match="MIXTURE_OR_TASK_MODULE 'no_such_mod"):
    input_pipeline.import_task_modules("no_such_module_xyz")


def test_eval_shards_keep_their_partial_batches_and_pad_them():
  """17 examples over 2 hosts: shards of 9 and 8 in host batches of 4."""
  shards = [list(input_pipeline.numpy_batches(_dataset(
      fixture_task.UNEVEN_EVAL_TASK, split="validation", shuffle=False,
      num_epochs=1, shard=(i, 2), drop_remainder=False))) for i in (0, 1)]
  assert [[len(b["decoder_target_tokens"]) for b in s] for s in shards] == [
      [4, 4, 1], [4, 4]]
  padding = input_pipeline.padding_batch(_dataset(
      fixture_task.UNEVEN_EVAL_TASK, split="validation", num_epochs=1,
      drop_remainder=False), 4)
  assert set(padding) == set(input_pipeline.MODEL_FEATURES)
  assert all(not v.any() for v in padding.values())
  last = shards[0][-1]
  padded = input_pipeline.pad_batch(last, padding)
  for k, v in padded.items():
    assert v.shape == padding[k].shape and v.dtype == last[k].dtype, k
    np.testing.assert_array_equal(v[:1], last[k])
  weights = padded["decoder_loss_weights"]
  assert weights[0].sum() > 0 and not weights[1:].any()


def test_partial_batches_need_one_shard_per_host():
  with pytest.raises(errors.ConfigError,
                     match="data_shards=2: partial batches"):
    _dataset(split="validation", num_epochs=1, data_shards=2,
             drop_remainder=False)
