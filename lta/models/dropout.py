"""Dropout masks: flax's reference, or drawn from 8- or 16-bit uniforms."""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def dropout_keep_threshold(rate: float, bits: int) -> int:
  """The keep threshold t: a `bits`-bit uniform u is kept when u < t."""
  return int(round((1.0 - rate) * 2**bits))


def low_bit_keep_mask(rng: Array, shape: tuple[int, ...], rate: float,
                      bits: int) -> Array:
  """Boolean keep mask from `bits`-bit uniforms, 32 // bits per threefry word.

  P(keep) = dropout_keep_threshold(rate, bits) / 2**bits. jax.random.bits at
  8 or 16 bits would still run threefry once per element (the partitionable
  threefry, jax's default), so the words are drawn here and sliced.
  """
  per_word = 32 // bits
  last = shape[-1] if shape else 1
  words = jax.random.bits(rng, tuple(shape[:-1]) + (-(-last // per_word),),
                          jnp.uint32)
  shifts = jnp.arange(per_word, dtype=jnp.uint32) * bits
  slices = (words[..., None] >> shifts) & jnp.uint32(2**bits - 1)
  slices = slices.reshape(words.shape[:-1] + (-1,))[..., :last]
  keep = slices < jnp.uint32(dropout_keep_threshold(rate, bits))
  return keep.reshape(shape)


class LowBitDropout(nn.Module):
  """Dropout whose mask comes from 8- or 16-bit uniforms (see ExecutionConfig).

  Kept values are scaled by 2**bits / threshold, the inverse of the actual
  keep probability, so E[output] = input exactly.
  """
  rate: float
  bits: int = 8

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    if deterministic or self.rate == 0.0:
      return x
    threshold = dropout_keep_threshold(self.rate, self.bits)
    if threshold == 0:
      return jnp.zeros_like(x)
    keep = low_bit_keep_mask(self.make_rng("dropout"), x.shape, self.rate,
                             self.bits)
    scale = jnp.asarray(2**self.bits / threshold, x.dtype)
    return jax.lax.select(keep, x * scale, jnp.zeros_like(x))


def dropout(rate: float, bits: int = 32,
            name: Optional[str] = None) -> nn.Module:
  """flax's nn.Dropout (the reference) at 32 bits, else LowBitDropout."""
  if bits == 32:
    return nn.Dropout(rate, name=name)
  return LowBitDropout(rate, bits, name=name)
