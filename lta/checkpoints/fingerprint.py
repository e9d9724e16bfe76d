"""A cheap identity for a base model, recorded by every adapter.

An adapter's dW only means something on the base model it was trained on.
Adapters record `base_model_fingerprint(config, params)`, and merging checks
it, so an adapter from another base model (or another size, vocabulary or
dtype) never merges quietly.

The fingerprint is a sha256 over
  1. the architecture (`T5Config.architecture_dict()`, JSON with sorted keys),
  2. for every parameter, in sorted path order: its path, shape and dtype,
  3. and a deterministic sample of its values: SAMPLES_PER_TENSOR elements at
     evenly spaced flat indices (all elements of smaller tensors), hashed as
     their raw bytes in the parameter's own dtype.
Only the samples leave the device, so it costs milliseconds even for
mT5-xxl. Two checkpoints that differ only in values the sample misses
collide; that is accepted: the point is catching a wrong base model, not
tampering.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from flax.core import meta
import numpy as np

from lta.models.mt5.config import T5Config
from lta.adapters.tree import flatten_tree

SAMPLES_PER_TENSOR = 256
COPY_WHOLE_AT_MOST = 1 << 16  # elements
VERSION = 1


def sample_indices(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
  """Evenly spaced positions (as per-axis index arrays) of a tensor."""
  size = int(np.prod(shape, dtype=np.int64))
  n = min(size, SAMPLES_PER_TENSOR)
  flat = np.unique(np.linspace(0, size - 1, n).round().astype(np.int64))
  return np.unravel_index(flat, shape)


def _sample(value: Any) -> np.ndarray:
  shape = tuple(np.shape(value))
  if not shape:
    return np.asarray(value).reshape(1)
  indices = sample_indices(shape)
  # A small tensor is copied whole: cheaper than compiling a device gather
  # for its shape (the same values, so the same fingerprint).
  if (np.prod(shape, dtype=np.int64) <= COPY_WHOLE_AT_MOST and
      getattr(value, "is_fully_addressable", True)):
    return np.asarray(value)[indices]
  # Indexing a jax.Array gathers on device; only the sample is copied back.
  return np.asarray(value[indices])


def base_model_fingerprint(config: T5Config, params: Mapping[str, Any]) -> str:
  """'sha256:<hex>' identifying the architecture and the base weights."""
  h = hashlib.sha256()
  h.update(f"lta-base-fingerprint-v{VERSION}\n".encode())
  h.update(json.dumps(config.architecture_dict(), sort_keys=True).encode())
  # Partitioning boxes (nn.LogicallyPartitioned) carry no identity.
  for path, value in sorted(flatten_tree(meta.unbox(params)).items()):
    dtype = np.dtype(getattr(value, "dtype", np.asarray(value).dtype))
    h.update(f"\n{path}|{tuple(np.shape(value))}|{dtype.name}|".encode())
    h.update(np.ascontiguousarray(_sample(value).astype(dtype)).tobytes())
  return "sha256:" + h.hexdigest()
