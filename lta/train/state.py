"""What a training run carries from step to step.

The trainable tree (chosen by regex, see lta.adapters.trainable) is the only one
with gradients and optimizer state; the frozen tree rides along unchanged.
Only `checkpoint_items()` is saved: step, trainable, optimizer state, rng.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lta import errors
from lta.adapters import adapter_io
from lta.adapters import trainable as trainable_lib
from lta.adapters.tree import flatten_tree, unflatten_tree


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  trainable: Any
  frozen: Any
  opt_state: Any
  rng: jax.Array  # raw uint32 key; dropout keys are folded in per step

  @property
  def variables(self) -> dict[str, Any]:
    return trainable_lib.combine(self.trainable, self.frozen)

  def checkpoint_items(self) -> dict[str, Any]:
    return {"step": self.step, "trainable": self.trainable,
            "opt_state": self.opt_state, "rng": self.rng}

  def replace_checkpoint_items(self, items: dict[str, Any]) -> "TrainState":
    return self.replace(step=items["step"], trainable=items["trainable"],
                        opt_state=items["opt_state"], rng=items["rng"])


def create(variables: dict[str, Any], pattern: str,
           optimizer: optax.GradientTransformation, seed: int = 0,
           ) -> TrainState:
  """Splits `variables` by `pattern` and initialises the optimizer state.

  Call under jit with output shardings to build the state on devices.
  """
  trainable, frozen = trainable_lib.split_trainable(variables, pattern)
  return TrainState(step=jnp.zeros((), jnp.int32), trainable=trainable,
                    frozen=frozen, opt_state=optimizer.init(trainable),
                    rng=jax.random.key_data(jax.random.key(seed)))


def load_initial_adapter(path: str, adapters: Any,
                         base_fingerprint: str) -> dict[str, Any]:
  """An exported adapter (e.g. a prefix-LM stage) to start training from.

  Its tree must match the run's adapter tree exactly, and it must have been
  trained on the same base model.
  """
  tree, manifest = adapter_io.load_adapter(path)
  if manifest.base_model_fingerprint != base_fingerprint:
    raise errors.CheckpointError(
        f"INITIAL_ADAPTER_PATH={path!r} was trained on base model "
        f"{manifest.base_model_fingerprint}, this run's base is "
        f"{base_fingerprint}")
  want = flatten_tree(adapters)
  got = flatten_tree(tree)
  wrong = sorted(k for k in set(want) | set(got)
                 if k not in want or k not in got or
                 tuple(np.shape(want[k])) != tuple(np.shape(got[k])))
  if wrong:
    raise errors.ConfigError(
        f"INITIAL_ADAPTER_PATH={path!r} does not fit this run's "
        f"AdapterConfig; mismatched leaves: {wrong[:5]}")
  return unflatten_tree(
      {k: np.asarray(got[k], want[k].dtype) for k in want})
