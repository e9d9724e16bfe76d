"""Optimizers and learning-rate schedules, chosen by gin.

Adafactor is the T5X default; AdamW is the usual PEFT choice. 2e-4 is the
paper's LoRA learning rate. Schedules: constant, linear warmup then rsqrt
decay (T5's), or linear warmup then cosine decay.
"""

from __future__ import annotations

from typing import Optional

import gin
import jax.numpy as jnp
import optax

from lta import errors

ADAPTER_LEARNING_RATE = 2e-4
SCHEDULES = ("constant", "rsqrt", "cosine")
OPTIMIZERS = ("adafactor", "adamw")


@gin.configurable
def make_schedule(learning_rate: float = ADAPTER_LEARNING_RATE,
                  kind: str = "constant", warmup_steps: int = 0,
                  total_steps: Optional[int] = None,
                  final_fraction: float = 0.0) -> optax.Schedule:
  """learning_rate is the peak value, reached after `warmup_steps`.

  rsqrt: lr * sqrt(max(warmup, 1) / max(step, warmup)) after warmup.
  cosine: decays to `final_fraction * lr` at `total_steps`.
  """
  if kind not in SCHEDULES:
    raise errors.ConfigError(f"make_schedule.kind={kind!r}; expected one of "
                             f"{SCHEDULES}")
  if learning_rate <= 0:
    raise errors.ConfigError(
        f"make_schedule.learning_rate must be positive, got {learning_rate}")
  warmup = optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1))
  if kind == "constant":
    after = optax.constant_schedule(learning_rate)
  elif kind == "rsqrt":
    w = max(warmup_steps, 1)

    def after(count):
      return learning_rate * jnp.sqrt(w / jnp.maximum(count + w, w))
  else:
    if not total_steps or total_steps <= warmup_steps:
      raise errors.ConfigError(
          f"make_schedule(kind='cosine') needs total_steps > warmup_steps, "
          f"got total_steps={total_steps}, warmup_steps={warmup_steps}")
    after = optax.cosine_decay_schedule(learning_rate,
                                        total_steps - warmup_steps,
                                        alpha=final_fraction)
  if warmup_steps <= 0:
    return after
  return optax.join_schedules([warmup, after], [warmup_steps])


@gin.configurable
def make_optimizer(name: str = "adafactor",
                   schedule: Optional[optax.Schedule] = None,
                   clip_norm: Optional[float] = 1.0,
                   weight_decay: float = 0.0,
                   b1: float = 0.9, b2: float = 0.999,
                   multiply_by_parameter_scale: bool = False,
                   rate_in_state: Optional[float] = None,
                   ) -> optax.GradientTransformation:
  """The optimizer of the trainable tree, after global-norm clipping.

  Adafactor's parameter-scale multiplication is off by default: LoRA's B
  starts at zero, which would shrink its step to 1e-3 of the learning rate.
  rate_in_state: a constant AdamW rate kept in the optimizer state instead
  of `schedule`, so that runs differing only in the rate share one compiled
  train step (a learning-rate sweep compiles once).
  """
  if name not in OPTIMIZERS:
    raise errors.ConfigError(
        f"make_optimizer.name={name!r}{errors.did_you_mean(name, OPTIMIZERS)}; "
        f"expected one of {', '.join(OPTIMIZERS)}")
  if rate_in_state is not None:
    if name != "adamw" or schedule is not None:
      raise errors.ConfigError(
          "make_optimizer.rate_in_state is a constant AdamW rate: set "
          "name='adamw' and no schedule")
    opt = optax.inject_hyperparams(optax.adamw)(
        learning_rate=rate_in_state, b1=b1, b2=b2, weight_decay=weight_decay)
    return (optax.chain(optax.clip_by_global_norm(clip_norm), opt)
            if clip_norm else opt)
  schedule = schedule if schedule is not None else make_schedule()
  if name == "adafactor":
    opt = optax.adafactor(
        schedule, multiply_by_parameter_scale=multiply_by_parameter_scale,
        weight_decay_rate=weight_decay or None)
  else:
    opt = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay)
  if clip_norm:
    opt = optax.chain(optax.clip_by_global_norm(clip_norm), opt)
  return opt
