"""Dropout masks: flax's reference, or drawn from 8- or 16-bit uniforms, from
jax.random's threefry or XLA's random bit generator."""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# Where a mask's 32-bit words come from. "jax": jax.random.bits, the
# partitionable threefry (the same mask on every mesh). "xla": XLA's
# RngBitGenerator, also three-fry: one fused pass instead of a loop on CPU,
# but each device of a mesh draws the whole mask, and its bits may change
# with the XLA version.
DROPOUT_RNGS = ("jax", "xla")


@dataclasses.dataclass(frozen=True)
class DropoutMasks:
  """How a network draws its dropout masks (ExecutionConfig sets it).

  bits: 32 is one word per element (flax's nn.Dropout with rng "jax");
    16 or 8 slice one word into 2 or 4 uniforms.
  rng: one of DROPOUT_RNGS.
  """
  bits: int = 32
  rng: str = "jax"

  @property
  def reference(self) -> bool:
    return self.bits == 32 and self.rng == "jax"


def dropout_keep_threshold(rate: float, bits: int) -> int:
  """The keep threshold t: a `bits`-bit uniform u is kept when u < t."""
  return int(round((1.0 - rate) * 2**bits))


def random_words(rng: Array, shape: tuple[int, ...], source: str) -> Array:
  """uint32 words of `shape` from `rng`, drawn as DROPOUT_RNGS[source] says."""
  if source == "jax":
    return jax.random.bits(rng, shape, jnp.uint32)
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  data = rng.ravel().astype(jnp.uint32)[:4]
  # XLA's three-fry state: a 64-bit key (the first two words) and counter.
  key = jnp.concatenate([data, jnp.zeros((4 - data.size,), jnp.uint32)])
  return jax.lax.rng_bit_generator(
      key, shape, jnp.uint32,
      algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY)[1]


def low_bit_keep_mask(rng: Array, shape: tuple[int, ...], rate: float,
                      bits: int, source: str = "jax") -> Array:
  """Boolean keep mask from `bits`-bit uniforms, 32 // bits per word.

  P(keep) = dropout_keep_threshold(rate, bits) / 2**bits. jax.random.bits at
  8 or 16 bits would still run threefry once per element (the partitionable
  threefry, jax's default), so the words are drawn here and sliced.
  """
  per_word = 32 // bits
  last = shape[-1] if shape else 1
  words = random_words(rng, tuple(shape[:-1]) + (-(-last // per_word),),
                       source)
  shifts = jnp.arange(per_word, dtype=jnp.uint32) * bits
  slices = (words[..., None] >> shifts) & jnp.uint32(2**bits - 1)
  slices = slices.reshape(words.shape[:-1] + (-1,))[..., :last]
  keep = slices < jnp.uint32(dropout_keep_threshold(rate, bits))
  return keep.reshape(shape)


class LowBitDropout(nn.Module):
  """Dropout whose mask comes from `bits`-bit uniforms (see DropoutMasks).

  Kept values are scaled by 2**bits / threshold, the inverse of the actual
  keep probability, so E[output] = input exactly.
  """
  rate: float
  bits: int = 8
  rng: str = "jax"

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    if deterministic or self.rate == 0.0:
      return x
    threshold = dropout_keep_threshold(self.rate, self.bits)
    if threshold == 0:
      return jnp.zeros_like(x)
    keep = low_bit_keep_mask(self.make_rng("dropout"), x.shape, self.rate,
                             self.bits, self.rng)
    scale = jnp.asarray(2**self.bits / threshold, x.dtype)
    return jax.lax.select(keep, x * scale, jnp.zeros_like(x))


def dropout(rate: float, masks: DropoutMasks = DropoutMasks(),
            name: Optional[str] = None) -> nn.Module:
  """flax's nn.Dropout (the reference: 32 bits from jax.random), else
  LowBitDropout."""
  if masks.reference:
    return nn.Dropout(rate, name=name)
  return LowBitDropout(rate, masks.bits, masks.rng, name=name)
