"""Learning-rate schedules and optimizer choice."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lta.train import optimizers


def test_adapter_default_is_the_papers_constant_2e4():
  schedule = optimizers.make_schedule()
  assert optimizers.ADAPTER_LEARNING_RATE == 2e-4
  for step in (0, 10, 10_000):
    assert float(schedule(step)) == pytest.approx(2e-4)


def test_warmup_then_rsqrt():
  schedule = optimizers.make_schedule(1e-3, "rsqrt", warmup_steps=100)
  assert float(schedule(0)) == 0.0
  assert float(schedule(50)) == pytest.approx(5e-4)
  assert float(schedule(100)) == pytest.approx(1e-3)
  assert float(schedule(400)) == pytest.approx(1e-3 * (100 / 400) ** 0.5)


def test_warmup_then_cosine_to_final_fraction():
  schedule = optimizers.make_schedule(1e-3, "cosine", warmup_steps=10,
                                      total_steps=110, final_fraction=0.1)
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(60)) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
  assert float(schedule(110)) == pytest.approx(1e-4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="linear"), "make_schedule.kind='linear'"),
    (dict(learning_rate=0.0), "must be positive"),
    (dict(kind="cosine", warmup_steps=10, total_steps=10), "total_steps"),
])
def test_bad_schedules_are_named(kwargs, match):
  with pytest.raises(ValueError, match=match):
    optimizers.make_schedule(**kwargs)


def test_unknown_optimizer_is_named():
  with pytest.raises(ValueError, match="make_optimizer.name='sgd'"):
    optimizers.make_optimizer("sgd")


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_optimizers_descend_and_clip(name):
  params = {"w": jnp.array([3.0, -2.0])}
  loss = lambda p: jnp.sum(p["w"] ** 2)
  opt = optimizers.make_optimizer(
      name, optimizers.make_schedule(0.1), clip_norm=1.0)
  state = opt.init(params)
  start = float(loss(params))
  for _ in range(5):
    grads = jax.grad(loss)(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert float(loss(params)) < start


def _two_updates(clip_norm, scale):
  opt = optimizers.make_optimizer("adamw", optax.constant_schedule(1.0),
                                  clip_norm=clip_norm)
  params = {"a": jnp.zeros((4,))}
  state = opt.init(params)
  _, state = opt.update({"a": jnp.full((4,), 10.0 * scale)}, state, params)
  updates, _ = opt.update({"a": jnp.full((4,), 0.1 * scale)}, state, params)
  return np.asarray(updates["a"])


def test_clipping_acts_only_above_the_norm():
  # Adam normalises one step, but the second step sees the ratio of the
  # (clipped) gradients: clipping 20 -> 0.5 changes it.
  assert not np.allclose(_two_updates(0.5, 1.0), _two_updates(None, 1.0))
  np.testing.assert_allclose(_two_updates(0.5, 1e-3),
                             _two_updates(None, 1e-3), rtol=1e-6)


def _adamw_steps(optimizer, steps=3):
  params = {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.1)}
  state = optimizer.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2 * p["b"]))(params)
    updates, state = optimizer.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return params, step, state


def test_rate_in_state_is_adamw_at_that_rate_and_compiles_once():
  for rate in (1e-3, 3e-2):
    want, _, _ = _adamw_steps(optimizers.make_optimizer(
        "adamw", optimizers.make_schedule(rate)))
    got, _, _ = _adamw_steps(optimizers.make_optimizer(
        "adamw", rate_in_state=rate))
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6)
  # The rate is data, not a constant of the program: one program per sweep.
  programs = []
  for rate in (1e-3, 3e-2):
    params, step, state = _adamw_steps(
        optimizers.make_optimizer("adamw", rate_in_state=rate), steps=1)
    programs.append(step.lower(params, state).as_text())
  assert programs[0] == programs[1]


def test_rate_in_state_refuses_a_schedule():
  with pytest.raises(ValueError, match="rate_in_state is a constant AdamW"):
    optimizers.make_optimizer("adafactor", rate_in_state=1e-3)
