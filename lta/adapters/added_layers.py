"""Adapter kinds that add to the network instead of adding dW to a kernel.

A soft prompt (kind 'prompt') is a (num_virtual_tokens, d_model) matrix
prepended to the input embeddings of the stack that reads the input: its
one leaf is 'encoder/prompt' (mT5, mBART, NLLB) or 'decoder/prompt' (a
decoder-only model). A bottleneck adapter (kind 'bottleneck') computes
x + up(act(down(x))) on a sublayer's output; its module is named after the
sublayer, '<stack>/layers_<i>/<sublayer>_adapter', with the leaves below.

Neither is a dW on base kernels, so neither folds into the base weights.
A bottleneck adapter whose up-projection is zero (as initialised) is the
identity and merges into nothing; anything else is refused by name
(`refuse_fold`), and must run unmerged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from lta.errors import CheckpointError

if TYPE_CHECKING:
  from lta.adapters.config import AdapterConfig

PROMPT = "prompt"
# The stacks a prompt may sit in: an encoder-decoder's encoder, or the
# decoder of a decoder-only model.
PROMPT_STACKS = ("encoder", "decoder")
DOWN_KERNEL, DOWN_BIAS = "down_kernel", "down_bias"
UP_KERNEL, UP_BIAS = "up_kernel", "up_bias"
BOTTLENECK_LEAVES = (DOWN_KERNEL, DOWN_BIAS, UP_KERNEL, UP_BIAS)
# The sublayers each placement adapts (the encoder's self-attention is
# 'attention', the decoder's 'self_attention'; cross-attention is not).
PLACEMENT_SUBLAYERS = {
    "houlsby": ("attention", "self_attention", "mlp"),
    "pfeiffer": ("mlp",),
}
_MODULE_RE = re.compile(r"(encoder|decoder)/layers_\d+/(\w+)_adapter")


def adapter_name(sublayer: str) -> str:
  return f"{sublayer}_adapter"


def sublayers(placement: str) -> tuple[str, ...]:
  return PLACEMENT_SUBLAYERS[placement]


def bottleneck_shapes(d_model: int, width: int) -> dict[str, tuple]:
  return {DOWN_KERNEL: (d_model, width), DOWN_BIAS: (width,),
          UP_KERNEL: (width, d_model), UP_BIAS: (d_model,)}


def mismatch(modules: Mapping[str, Mapping[str, Sequence[int]]],
             config: AdapterConfig) -> Optional[str]:
  """How {module: {leaf: shape}} contradicts a prompt or bottleneck
  config, or None."""
  if config.kind == "prompt":
    got = {m: sorted(l) for m, l in modules.items()}
    if got not in [{stack: [PROMPT]} for stack in PROMPT_STACKS]:
      return (f"a prompt adapter has exactly one leaf, "
              f"{' or '.join(repr(f'{s}/{PROMPT}') for s in PROMPT_STACKS)}, "
              f"got {sorted(f'{m}/{l}' for m, ls in got.items() for l in ls)}")
    (stack, leaves), = modules.items()
    shape = list(leaves[PROMPT])
    if len(shape) != 2 or shape[0] != config.num_virtual_tokens:
      return (f"{stack}/{PROMPT} has shape {shape}; the config gives "
              f"num_virtual_tokens={config.num_virtual_tokens} rows")
    return None
  allowed = sublayers(config.bottleneck_placement)
  for module, leaves in sorted(modules.items()):
    m = _MODULE_RE.fullmatch(module)
    if not m or m.group(2) not in allowed:
      return (f"adapter at {module!r} is not a {config.bottleneck_placement} "
              f"bottleneck module (after {', '.join(allowed)})")
    if sorted(leaves) != sorted(BOTTLENECK_LEAVES):
      return (f"partial or foreign adapter at {module!r}: has leaves "
              f"{sorted(leaves)}, a bottleneck adapter needs "
              f"{sorted(BOTTLENECK_LEAVES)}")
    d_model = list(leaves[UP_BIAS])[0] if len(leaves[UP_BIAS]) == 1 else -1
    want = bottleneck_shapes(d_model, config.bottleneck_width)
    for leaf in BOTTLENECK_LEAVES:
      if list(leaves[leaf]) != list(want[leaf]):
        return (f"{module}/{leaf} has shape {list(leaves[leaf])}; the config "
                f"(bottleneck_width={config.bottleneck_width}) gives "
                f"{list(want[leaf])}")
  return None


def is_identity(modules: Mapping[str, Mapping[str, Any]]) -> bool:
  """Whether every bottleneck's up-projection (kernel and bias) is zero."""
  return all(not np.any(np.asarray(leaves[leaf]))
             for leaves in modules.values() for leaf in (UP_KERNEL, UP_BIAS))


def refuse_fold(modules: Mapping[str, Mapping[str, Any]],
                config: AdapterConfig) -> None:
  """Raises unless the adapter folds into nothing (an identity bottleneck)."""
  if config.kind == "prompt":
    raise CheckpointError(
        "a prompt adapter adds input positions, not a dW on base weights: "
        "it cannot be merged into the base; decode it unmerged")
  if not is_identity(modules):
    raise CheckpointError(
        "a trained bottleneck adapter is a nonlinear layer, not a dW on base "
        "weights: it cannot be merged into the base; decode it unmerged")
