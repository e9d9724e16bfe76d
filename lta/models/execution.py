"""How a network's training step runs: dropout masks, remat, chunked loss.

These options change speed and memory, never the function computed (up to
float rounding, and up to which random dropout mask is drawn). The defaults
are the plain reference path. bf16 compute with float32 master weights is
`T5Config.dtype = "bfloat16"` (parameters stay `param_dtype`).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import gin
import jax

from lta import errors
from lta.models.dropout import DROPOUT_RNGS, DropoutMasks

# Name -> jax.checkpoint policy for each encoder and decoder layer ("none":
# no remat, XLA keeps every activation it needs for the backward pass).
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_saveable,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
DROPOUT_MASK_BITS = (32, 16, 8)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
  """Speed and memory options of the training step, for every model family
  (mT5, mBART / NLLB, decoder-only).

  dropout_mask_bits: 32 is flax's nn.Dropout (one 32-bit threefry word per
    element). 16 or 8 draw one 32-bit word per 2 or 4 elements and compare
    each 16- or 8-bit slice with a threshold: the keep probability is rounded
    to a multiple of 2**-bits (at most 2**-(bits+1) away) and kept values
    are scaled by its inverse, so the expectation is exact.
  dropout_rng: where the words come from (lta.models.dropout.DROPOUT_RNGS).
    "jax" (jax.random's partitionable threefry) draws the same masks on
    every mesh, each device only its shard. "xla" (XLA's RngBitGenerator,
    three-fry too) skips the rolled threefry loop jax runs on CPU, but XLA
    does not partition it: on a mesh every device draws each mask whole.
    Its bits may change with the XLA version.
  remat_policy: one of REMAT_POLICIES, applied to every encoder and decoder
    layer (nn.remat, `remat_layer`); cached decoding is unaffected.
  loss_chunk_length: 0 computes the full (batch, length, vocab) logits. A
    positive value computes the output projection and the cross entropy
    over that many target positions at a time, rematerialised in the
    backward pass, so neither the full logits nor their gradient exist.
    It must divide the target length.
  """
  dropout_mask_bits: int = 32
  dropout_rng: str = "jax"
  remat_policy: str = "none"
  loss_chunk_length: int = 0

  def __post_init__(self):
    if self.dropout_mask_bits not in DROPOUT_MASK_BITS:
      raise errors.ConfigError(
          f"ExecutionConfig.dropout_mask_bits={self.dropout_mask_bits!r}; "
          f"expected one of {DROPOUT_MASK_BITS}")
    if self.dropout_rng not in DROPOUT_RNGS:
      raise errors.ConfigError(
          f"ExecutionConfig.dropout_rng={self.dropout_rng!r}; expected one "
          f"of {', '.join(map(repr, DROPOUT_RNGS))}"
          f"{errors.did_you_mean(str(self.dropout_rng), DROPOUT_RNGS)}")
    if self.remat_policy not in REMAT_POLICIES:
      raise errors.ConfigError(
          f"ExecutionConfig.remat_policy={self.remat_policy!r}; expected one "
          f"of {', '.join(map(repr, REMAT_POLICIES))}"
          f"{errors.did_you_mean(str(self.remat_policy), REMAT_POLICIES)}")
    if self.loss_chunk_length < 0:
      raise errors.ConfigError(
          f"ExecutionConfig.loss_chunk_length={self.loss_chunk_length}; "
          "expected 0 (no chunking) or a positive target length")

  @property
  def dropout_masks(self) -> DropoutMasks:
    return DropoutMasks(self.dropout_mask_bits, self.dropout_rng)

  @property
  def remat(self):
    return REMAT_POLICIES[self.remat_policy]


def remat_layer(cls: type[nn.Module], execution: ExecutionConfig,
                static_argnums: tuple[int, ...],
                decode: bool = False) -> type[nn.Module]:
  """A layer class wrapped in nn.remat with `execution`'s policy, or `cls`
  itself without a policy or when decoding with a cache.

  static_argnums count `self` as 0: the layer's Python-valued arguments
  (deterministic, decode, ...).
  """
  if execution.remat_policy == "none" or decode:
    return cls
  return nn.remat(cls, policy=execution.remat, static_argnums=static_argnums)
