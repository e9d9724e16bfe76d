"""Choosing trainable leaves by regex over 'collection/path' strings."""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import numpy as np

from lta.adapters.tree import flatten_tree, unflatten_tree

# Named choices of what a run trains (the companion study's variants).
TRAINABLE_PRESETS = {
    # LoRA / Kronecker adapters only; the base model stays frozen.
    "adapters": r"adapters/.*",
    # Full fine-tuning of every base parameter.
    "full": r"params/.*",
    # Frozen decoder and frozen embeddings: only the encoder stack trains.
    "frozen_decoder": r"params/encoder/.*",
}


def resolve_pattern(pattern_or_preset: str) -> str:
  return TRAINABLE_PRESETS.get(pattern_or_preset, pattern_or_preset)




def split_trainable(variables: Mapping[str, Any],
                    pattern: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """Splits {'params': ..., 'adapters': ...} into (trainable, frozen).

  `pattern` (or a TRAINABLE_PRESETS name) must fullmatch a leaf's
  'collection/path'. A pattern that selects nothing is an error.
  """
  regex = re.compile(resolve_pattern(pattern))
  flat = flatten_tree(variables)
  trainable = {k: v for k, v in flat.items() if regex.fullmatch(k)}
  if not trainable:
    sample = ", ".join(sorted(flat)[:4])
    raise ValueError(
        f"Trainable pattern {pattern!r} matches no variable; paths look like "
        f"{sample}, ...")
  frozen = {k: v for k, v in flat.items() if k not in trainable}
  return unflatten_tree(trainable), unflatten_tree(frozen)


def combine(trainable: Mapping[str, Any],
            frozen: Mapping[str, Any]) -> dict[str, Any]:
  """Inverse of split_trainable."""
  flat = flatten_tree(frozen)
  overlap = set(flat) & set(flatten_tree(trainable))
  if overlap:
    raise ValueError(f"Leaves both trainable and frozen: {sorted(overlap)}")
  flat.update(flatten_tree(trainable))
  return unflatten_tree(flat)


def count_params(tree: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def trainable_summary(trainable: Any, base_params: Any) -> dict[str, float]:
  """Trainable parameter count and its share of the base model."""
  n_train, n_base = count_params(trainable), count_params(base_params)
  return {"trainable": n_train, "base": n_base,
          "share_percent": 100.0 * n_train / max(n_base, 1)}
