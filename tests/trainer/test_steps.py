"""train_step / eval_step: only the trainable tree learns; exact accumulation."""

import functools
import re

import jax
import numpy as np
import optax
import pytest

from lta.train import optimizers
from lta.train import steps
from lta.adapters.tree import flatten_tree
from tests.trainer import states


def _run_steps(state, optimizer, model, batches, **kwargs):
  step = jax.jit(functools.partial(steps.train_step, model=model,
                                   optimizer=optimizer, **kwargs),
                 donate_argnums=(0,))
  losses = []
  for batch in batches:
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  return state, losses


def _opt_state_param_paths(opt_state):
  """'collection/path' of every optimizer-state leaf that mirrors a param."""
  paths = set()
  for path, _ in jax.tree_util.tree_leaves_with_path(opt_state):
    keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    if keys:
      paths.add("/".join(keys))
  return paths


def test_adapter_training_leaves_base_bit_identical():
  model = states.make_model()
  state, opt = states.make_state(model, "adapters")
  frozen_before = states.host_copy(state.frozen)
  trainable_before = states.host_copy(state.trainable)
  assert set(state.trainable) == {"adapters"}
  assert set(state.frozen) == {"params"}

  # Gradients exist only for the trainable tree, and are not all zero.
  grads, _ = jax.grad(steps.token_sums, has_aux=True)(
      state.trainable, state.frozen, states.make_batch(), None, model)
  assert (jax.tree.structure(grads) ==
          jax.tree.structure(state.trainable))
  assert float(optax.global_norm(grads)) > 0

  state, _ = _run_steps(state, opt, model,
                        [states.make_batch(i) for i in range(3)])
  for (path, before), after in zip(
      flatten_tree(frozen_before).items(),
      flatten_tree(states.host_copy(state.frozen)).values()):
    assert before.tobytes() == after.tobytes(), path
  changed = [not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(trainable_before),
      jax.tree.leaves(states.host_copy(state.trainable)))]
  assert all(changed)
  assert int(state.step) == 3

  # Optimizer moments exist for every adapter leaf and for nothing else.
  opt_paths = _opt_state_param_paths(state.opt_state)
  assert opt_paths == set(flatten_tree(state.trainable))
  assert not any(p.startswith("params/") for p in opt_paths)


@pytest.mark.parametrize("preset,trained,frozen", [
    ("full", r"params/.*", None),
    ("frozen_decoder", r"params/encoder/.*",
     r"params/(decoder|token_embedder)/.*"),
])
def test_presets_choose_what_trains(preset, trained, frozen):
  model = states.make_model(adapter=None)
  state, opt = states.make_state(model, preset)
  before = flatten_tree(states.host_copy(state.variables))
  state, _ = _run_steps(state, opt, model, [states.make_batch()])
  after = flatten_tree(states.host_copy(state.variables))
  opt_paths = _opt_state_param_paths(state.opt_state)
  for path in before:
    if re.fullmatch(trained, path):
      assert path in opt_paths
      if path.endswith("kernel"):
        assert not np.array_equal(before[path], after[path]), path
    else:
      assert frozen and re.fullmatch(frozen, path), path
      assert path not in opt_paths
      assert before[path].tobytes() == after[path].tobytes(), path


@pytest.mark.parametrize("num_microbatches", [2, 4])
def test_microbatches_equal_one_big_batch(num_microbatches):
  model = states.make_model()
  batch = states.make_batch(seed=7)  # ragged: microbatches differ in tokens
  results = {}
  for k in (1, num_microbatches):
    state, opt = states.make_state(model, "adapters",
                                   optimizer=optimizers.make_optimizer(
                                       "adamw", optimizers.make_schedule(1e-2),
                                       clip_norm=None))
    state, losses = _run_steps(state, opt, model, [batch, batch],
                               num_microbatches=k)
    results[k] = (losses, states.host_copy(state.trainable))
  np.testing.assert_allclose(results[1][0], results[num_microbatches][0],
                             rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results[1][1]),
                  jax.tree.leaves(results[num_microbatches][1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_microbatches_must_divide_batch():
  with pytest.raises(ValueError, match="does not split into 3"):
    steps.split_microbatches(states.make_batch(batch=8), 3)


def test_eval_step_sums_match_loss():
  model = states.make_model()
  state, _ = states.make_state(model)
  batch = states.make_batch()
  sums = jax.jit(functools.partial(steps.eval_step, model=model))(state,
                                                                  batch)
  loss, aux = model.loss_fn(state.variables, batch, None)
  assert float(sums["num_tokens"]) == float((batch["decoder_target_tokens"]
                                             > 0).sum())
  np.testing.assert_allclose(float(sums["loss"]) / float(sums["num_tokens"]),
                             float(loss), rtol=1e-6)
  np.testing.assert_allclose(
      float(sums["accuracy"]) / float(sums["num_tokens"]),
      float(aux["accuracy"]), rtol=1e-6)


def test_dropout_rng_follows_step():
  """Dropout keys come from (seed, step): the same state replays the same."""
  model = states.make_model(config=states.CONFIG.replace(dropout_rate=0.3))
  state, opt = states.make_state(model)
  step = jax.jit(functools.partial(steps.train_step, model=model,
                                   optimizer=opt))
  batch = states.make_batch()
  _, m1 = step(state, batch)
  _, m2 = step(state, batch)
  _, m3 = step(state.replace(step=state.step + 1), batch)
  assert float(m1["loss"]) == float(m2["loss"])
  assert float(m1["loss"]) != float(m3["loss"])


def test_old_module_name_still_finds_the_steps():
  """lta.trainer (now lta.train.loop) held the steps; they moved to steps."""
  from lta.train import loop  # pylint: disable=g-import-not-at-top
  with pytest.warns(FutureWarning, match="moved to lta.train.steps"):
    assert loop.train_step is steps.train_step
  with pytest.raises(AttributeError):
    loop.no_such_step  # pylint: disable=pointless-statement
