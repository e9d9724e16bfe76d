"""The training loop end to end on CPU: learning, checkpoints, exact resume.

The runs read fixture_task.LOGGED_TASK, whose source logs the index of every
example it reads, so a test can tell which data a resumed run re-read.
"""

import dataclasses
import glob
import json
import os
import shutil
import signal
import threading
import time

import gin
import jax
import numpy as np
import pytest
import tensorflow as tf

from lta import errors
from lta.train import optimizers
from lta.train import state as train_state
from lta.train import loop as trainer
from lta.checkpoints import hf
from lta.checkpoints import orbax_ckpt
from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from tests.trainer import fixture_task
from tests.trainer import states

# A large vocabulary makes the frozen base much bigger than the adapters.
CONFIG = fixture_task.CONFIG.replace(vocab_size=32768)
STEPS = 16


def _train(model_dir, train_steps=STEPS, read_log=None, **overrides):
  """A run whose reads go to `read_log` (default: <model_dir>.reads)."""
  os.environ[fixture_task.READ_LOG_ENV] = read_log or model_dir + ".reads"
  kwargs = dict(
      model_dir=model_dir, mixture_or_task_name=fixture_task.LOGGED_TASK,
      task_feature_lengths=fixture_task.LENGTHS, train_steps=train_steps,
      initial_checkpoint_path=None, adapter=states.LORA, model_config=CONFIG,
      batch_size=8, log_period=1, checkpoint_period=4, keep_checkpoints=2,
      adapter_task="reverse", adapter_language="en",
      optimizer=optimizers.make_optimizer(
          "adamw", optimizers.make_schedule(1e-2)))
  kwargs.update(overrides)
  return trainer.train(**kwargs)


pytestmark = pytest.mark.usefixtures("clean_gin")


@pytest.fixture(autouse=True)
def _no_read_log():
  """The data-source read log is on only in the tests that set it."""
  yield
  os.environ.pop(fixture_task.READ_LOG_ENV, None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """One uninterrupted run, shared by the tests below."""
  gin.clear_config()
  model_dir = str(tmp_path_factory.mktemp("reference"))
  return model_dir, _train(model_dir)


def test_tiny_run_lowers_training_loss(reference):
  _, result = reference
  losses = [h["loss"] for h in result.history]
  assert [h["step"] for h in result.history] == list(range(1, STEPS + 1))
  assert np.mean(losses[-4:]) < losses[0] - 1.0, losses
  assert result.step == STEPS and not result.preempted


def test_exports_adapter_with_manifest(reference):
  model_dir, result = reference
  tree, manifest = adapter_io.load_adapter(os.path.join(model_dir, "adapter"))
  trained = jax.device_get(result.state.trainable["adapters"])
  for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(a, b)
  assert manifest.task == "reverse" and manifest.language == "en"
  assert manifest.config == states.LORA
  assert manifest.base_model_name == CONFIG.name
  assert manifest.base_model_fingerprint.startswith("sha256:")
  assert manifest.provenance["step"] == STEPS


def test_checkpoints_hold_only_adapters(reference):
  model_dir, result = reference
  ckpt = orbax_ckpt.TrainCheckpointer(model_dir)
  assert ckpt.all_steps() == [12, 16]  # keep 2
  meta = ckpt.state_metadata(16)
  run = ckpt.run_info(16)
  assert run["trainable"] == "adapters/.*"
  assert run["manifest"]["adapter"] == states.LORA.to_dict()
  adapter_paths = set(flatten_tree(result.state.trainable))
  assert set(flatten_tree(meta["trainable"])) == adapter_paths
  opt_leaves = [
      "/".join(str(getattr(k, "key", k)) for k in path)
      for path, _ in jax.tree_util.tree_leaves_with_path(meta["opt_state"])]
  assert not any("params" in p for p in opt_leaves)
  assert sum("adapters" in p for p in opt_leaves) == 2 * len(adapter_paths)

  def nbytes(tree):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))

  # No array of the frozen base is in the checkpoint: every saved array has
  # the shape of a trainable leaf or of its optimizer state.
  saved_shapes = {tuple(x.shape) for x in jax.tree.leaves(meta)}
  state_shapes = {tuple(np.shape(x)) for x in jax.tree.leaves(
      (result.state.trainable, result.state.opt_state, result.state.rng,
       result.state.step))}
  base_shapes = {tuple(x.shape) for x in jax.tree.leaves(result.state.frozen)}
  assert saved_shapes <= state_shapes
  assert not (saved_shapes & (base_shapes - state_shapes))
  # The bytes on disk follow the saved bytes, not the base's. OCDBT appends
  # B-tree nodes and may keep process-local copies, so a run writes between
  # 1x and about 25x the payload of these tiny arrays (tensorstore 0.1.86);
  # the frozen base alone is far larger than that bound.
  saved_bytes = nbytes(result.state.trainable) + nbytes(result.state.opt_state)
  base_bytes = nbytes(result.state.frozen)
  data_files = [f for f in glob.glob(os.path.join(
      ckpt.directory, "16", "state", "**", "d", "*"), recursive=True)
                if os.path.isfile(f)]
  data_bytes = sum(os.path.getsize(f) for f in data_files)
  bound = 32 * saved_bytes + 256 * 1024
  assert 4 * bound < base_bytes
  assert saved_bytes <= data_bytes < bound, (data_bytes, saved_bytes)
  ckpt.close()


def test_tensorboard_events_and_config_written(reference):
  model_dir, _ = reference
  events = glob.glob(os.path.join(model_dir, "train", "events.out.*"))
  assert events
  tags = {v.tag for e in tf.compat.v1.train.summary_iterator(events[0])
          for v in e.summary.value}
  assert {"loss", "steps_per_s", "tokens_per_s", "grad_norm"} <= tags
  assert os.path.isfile(os.path.join(model_dir, "config.gin"))


def _assert_same_trainable(got, want):
  got = flatten_tree(jax.device_get(got))
  want = flatten_tree(jax.device_get(want))
  assert set(got) == set(want)
  for path, value in want.items():
    np.testing.assert_array_equal(got[path], value, err_msg=path)


def test_resume_reads_no_consumed_example_and_matches(reference, tmp_path,
                                                      capsys):
  _, full = reference
  model_dir = str(tmp_path / "run")
  first = _train(model_dir, train_steps=STEPS // 2,
                 read_log=str(tmp_path / "first.reads"))
  assert first.step == STEPS // 2
  capsys.readouterr()
  resumed = _train(model_dir, read_log=str(tmp_path / "resumed.reads"))
  assert "at its saved input position (8 batches consumed)" in (
      capsys.readouterr().out)
  assert [h["step"] for h in resumed.history] == list(
      range(STEPS // 2 + 1, STEPS + 1))
  # Same data, same dropout keys, same optimizer state: bit-identical.
  assert ([h["loss"] for h in resumed.history] ==
          [h["loss"] for h in full.history[STEPS // 2:]])
  _assert_same_trainable(resumed.state.trainable, full.state.trainable)
  # The source yields examples 0, 1, 2, ... in order. The first run read
  # (at least) every example it consumed; the resumed one starts past all
  # of them and the shuffle buffer the iterator state restored, instead of
  # re-reading from example 0.
  first_reads = fixture_task.read_log(str(tmp_path / "first.reads"))
  resumed_reads = fixture_task.read_log(str(tmp_path / "resumed.reads"))
  assert first_reads[:STEPS // 2 * 8] == list(range(STEPS // 2 * 8))
  start = resumed_reads[0]
  assert start >= STEPS // 2 * 8
  assert resumed_reads == list(range(start, start + len(resumed_reads)))


def test_resume_needs_the_saved_input_position(reference, tmp_path):
  """A checkpoint without the iterator state is refused, never replayed."""
  model_dir = str(tmp_path / "run")
  shutil.copytree(reference[0], model_dir)
  step_dir = os.path.join(model_dir, "checkpoints", str(STEPS))
  shutil.rmtree(os.path.join(step_dir, orbax_ckpt.ITERATOR))
  with pytest.raises(errors.CheckpointError,
                     match=f"checkpoints/{STEPS}/iterator is missing"):
    _train(model_dir)
  data_file = os.path.join(step_dir, orbax_ckpt.DATA, "metadata")
  with open(data_file) as f:
    data = json.load(f)
  del data["position"]  # as an older lta wrote it
  with open(data_file, "w") as f:
    json.dump(data, f)
  with pytest.raises(errors.CheckpointError,
                     match=f"checkpoints/{STEPS}: it has no saved input "
                     "position"):
    _train(model_dir)


def test_pipeline_that_cannot_save_its_position_replays_and_says_so(
    reference, tmp_path, capsys):
  _, full = reference
  model_dir = str(tmp_path / "run")
  task = dict(mixture_or_task_name=fixture_task.LOGGED_PY_TASK)
  _train(model_dir, train_steps=STEPS // 2, **task)
  assert "tf.data cannot save this input pipeline's position (PyFunc is " \
      "stateful" in capsys.readouterr().out
  resumed = _train(model_dir, read_log=str(tmp_path / "resumed.reads"),
                   **task)
  assert "replaying its 8 consumed batches" in capsys.readouterr().out
  assert fixture_task.read_log(str(tmp_path / "resumed.reads"))[0] == 0
  _assert_same_trainable(resumed.state.trainable, full.state.trainable)


def test_resume_refuses_a_different_run(reference):
  model_dir, _ = reference
  with pytest.raises(errors.CheckpointError, match="batch_size=8"):
    _train(model_dir, batch_size=16)


def test_sigterm_saves_and_stops(tmp_path):
  """A preemption notice mid-run: checkpoint at the current step, no export."""
  model_dir = str(tmp_path)
  events_dir = os.path.join(model_dir, "train")

  # What the process had: a background job, say, starts with SIGINT ignored.
  before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

  def preempt_after_first_step():
    # The events file is made before the trainer's handler is installed:
    # a SIGTERM then would kill this (pytest's) process.
    deadline = time.time() + 120
    while time.time() < deadline and (
        not glob.glob(os.path.join(events_dir, "events.out.*")) or
        signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]):
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)

  killer = threading.Thread(target=preempt_after_first_step, daemon=True)
  killer.start()
  result = _train(model_dir, train_steps=10_000, checkpoint_period=10_000)
  killer.join()
  assert result.preempted and 0 < result.step < 10_000
  ckpt = orbax_ckpt.TrainCheckpointer(model_dir)
  assert ckpt.latest_step() == result.step
  ckpt.close()
  assert result.adapter_dir is None
  assert not os.path.exists(os.path.join(model_dir, "adapter"))
  # The trainer's handlers are gone again.
  assert {s: signal.getsignal(s) for s in before} == before


def test_next_stage_starts_from_exported_adapter(reference):
  """Intermediate tuning: stage 2's adapter starts as stage 1's export."""
  model_dir, result = reference
  path = os.path.join(model_dir, "adapter")
  _, manifest = adapter_io.load_adapter(path)
  fresh = jax.eval_shape(
      states.make_model(config=CONFIG).init_unboxed,
      jax.random.PRNGKey(0))["adapters"]
  loaded = train_state.load_initial_adapter(
      path, fresh, manifest.base_model_fingerprint)
  for a, b in zip(jax.tree.leaves(loaded),
                  jax.tree.leaves(jax.device_get(
                      result.state.trainable["adapters"]))):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="trained on base model"):
    train_state.load_initial_adapter(path, fresh, "sha256:other")
  rank4 = jax.eval_shape(
      states.make_model(adapter=dataclasses.replace(states.LORA, rank=4),
                        config=CONFIG).init_unboxed,
      jax.random.PRNGKey(0))["adapters"]
  with pytest.raises(ValueError, match="does not fit this run's"):
    train_state.load_initial_adapter(path, rank4,
                                     manifest.base_model_fingerprint)


def test_full_finetuning_exports_an_hf_checkpoint(tmp_path):
  result = _train(str(tmp_path), train_steps=2, adapter=None,
                  trainable="full", export_model=True)
  assert result.adapter_dir is None
  config, params = hf.load_hf_checkpoint(result.model_dir)
  assert config.architecture_dict() == CONFIG.architecture_dict()
  trained = flatten_tree(jax.device_get(result.state.trainable))
  exported = flatten_tree({"params": params})
  assert set(trained) == set(exported)
  for path, value in trained.items():
    np.testing.assert_array_equal(value, exported[path], err_msg=path)
