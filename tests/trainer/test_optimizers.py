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
