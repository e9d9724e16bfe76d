"""Network pieces of the adapter kinds that add layers: soft prompts and
bottleneck adapters (their leaves: lta.adapters.added_layers).

Like Projection's adapters, their variables live in the 'adapters'
collection, and a network applied without that collection is the plain
base network.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lta.adapters import added_layers
from lta.adapters.config import AdapterConfig
from lta.models.layers import ADAPTER_RANK, EMBED, padding_key_mask

Array = jax.Array
_ACTIVATIONS = {"relu": jax.nn.relu, "silu": jax.nn.silu,
                "gelu": lambda h: jax.nn.gelu(h, approximate=False)}


def _has_adapter(module: nn.Module, leaf: str) -> bool:
  return module.is_initializing() or module.has_variable("adapters", leaf)


def _adapter_variable(module: nn.Module, name: str, init, shape, axes,
                      dtype) -> Array:
  rng = module.make_rng("params") if module.is_initializing() else None
  return module.variable("adapters", name,
                         nn.with_logical_partitioning(init, axes), rng,
                         shape, jnp.dtype(dtype)).value


def prepend_prompt(module: nn.Module, adapter: Optional[AdapterConfig],
                   embedded: Array) -> Array:
  """`embedded` (batch, length, d) with the soft prompt in front, when
  `module` (the stack that reads the input: an encoder, or a decoder-only
  model's decoder) carries a prompt adapter; else unchanged.

  Initialised N(0, 1), as PEFT's RANDOM prompt-tuning init.
  """
  if adapter is None or adapter.kind != "prompt" or not _has_adapter(
      module, added_layers.PROMPT):
    return embedded
  prompt = _adapter_variable(
      module, added_layers.PROMPT, nn.initializers.normal(1.0),
      (adapter.num_virtual_tokens, embedded.shape[-1]), (None, EMBED),
      adapter.dtype)
  batch = embedded.shape[0]
  prompt = jnp.broadcast_to(prompt.astype(embedded.dtype),
                            (batch,) + prompt.shape)
  return jnp.concatenate([prompt, embedded], axis=1)


def encoder_key_mask(tokens: Array, encoded_length: int,
                     pad_id: int = 0) -> Array:
  """padding_key_mask of the encoder's tokens, with every position an
  encoder prepended (a soft prompt) visible: (batch, 1, 1, encoded_length)."""
  mask = padding_key_mask(tokens, pad_id)
  extra = encoded_length - tokens.shape[1]
  if extra == 0:
    return mask
  ones = jnp.ones(mask.shape[:-1] + (extra,), bool)
  return jnp.concatenate([ones, mask], axis=-1)


class Bottleneck(nn.Module):
  """x + up(act(down(x))) with biases; up starts at zero (the identity).

  Applied to a sublayer's output before its residual add (Houlsby et al.
  2019, Pfeiffer et al. 2021). Without its variables at apply time it is
  the identity, so a base network stays the base network.
  """
  adapter: AdapterConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if not _has_adapter(self, added_layers.DOWN_KERNEL):
      return x
    cfg, d = self.adapter, x.shape[-1]
    width = cfg.bottleneck_width

    def var(name, init, shape, axes):
      return _adapter_variable(self, name, init, shape, axes,
                               cfg.dtype).astype(self.dtype)

    down = var(added_layers.DOWN_KERNEL, nn.initializers.he_uniform(),
               (d, width), (EMBED, ADAPTER_RANK))
    down_bias = var(added_layers.DOWN_BIAS, nn.initializers.zeros, (width,),
                    (ADAPTER_RANK,))
    up = var(added_layers.UP_KERNEL, nn.initializers.zeros, (width, d),
             (ADAPTER_RANK, EMBED))
    up_bias = var(added_layers.UP_BIAS, nn.initializers.zeros, (d,),
                  (EMBED,))
    h = _ACTIVATIONS[cfg.bottleneck_activation](
        x.astype(self.dtype) @ down + down_bias)
    return x + (h @ up + up_bias).astype(x.dtype)


def bottleneck_after(block: nn.Module, sublayer: str, x: Array) -> Array:
  """`x` (the output of `sublayer` in `block`) through its bottleneck
  adapter when `block`'s adapter config places one there."""
  cfg = block.adapter
  if (cfg is None or cfg.kind != "bottleneck" or
      sublayer not in added_layers.sublayers(cfg.bottleneck_placement)):
    return x
  return Bottleneck(cfg, block.dtype,
                    name=added_layers.adapter_name(sublayer))(x)
