"""What an adapter tree is: its base model, config, shapes, task and origin.

A manifest travels with every saved adapter tree (`manifest.json` next to the
weights) so that arithmetic can refuse inputs that do not fit together
(`lta.arithmetic.compat`) and a merged adapter can say what it was made from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Optional

import numpy as np

from lta.errors import CheckpointError, did_you_mean
from lta.adapters.config import FLOAT_DTYPES, AdapterConfig, message_of
from lta.adapters.deltas import config_mismatch
from lta.adapters.tree import flatten_tree

# 2 added tensor_sha256; version-1 manifests still load (see adapter_io).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def adapter_fingerprint(tree: Mapping[str, Any]) -> str:
  """sha256 over paths, dtypes, shapes and bytes of every leaf."""
  h = hashlib.sha256()
  for path, value in flatten_tree(tree).items():
    arr = np.ascontiguousarray(np.asarray(value))
    h.update(f"{path}|{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
  return "sha256:" + h.hexdigest()


def tensor_sha256(value: Any) -> str:
  """Hex sha256 of an array's C-order little-endian bytes (as on disk)."""
  arr = np.asarray(value)
  if arr.dtype.byteorder == ">":
    arr = arr.astype(arr.dtype.newbyteorder("<"))
  return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def tree_sha256(tree: Mapping[str, Any]) -> dict[str, str]:
  return {p: tensor_sha256(v) for p, v in flatten_tree(tree).items()}


def tree_shapes(tree: Mapping[str, Any]) -> dict[str, list[int]]:
  return {p: list(np.shape(v)) for p, v in flatten_tree(tree).items()}


def _is_sha256(value: Any) -> bool:
  return (isinstance(value, str) and len(value) == 64 and
          all(c in "0123456789abcdef" for c in value))


@dataclasses.dataclass(frozen=True)
class AdapterManifest:
  """Metadata of one adapter tree.

  shapes: {'encoder/layers_0/attention/query/lora_a': [in, r], ...}; they
    must agree with `adapter` (rank, Kronecker factors, targets).
  tensor_sha256: {path: hex sha256 of the leaf's little-endian bytes}, the
    content `save_adapter` wrote and `load_adapter` checks. Empty for a tree
    not yet saved (e.g. the trainer's manifest before export) and in
    format-1 manifests, written before hashes existed.
  provenance: free-form for trained adapters (run, step); for merged
    adapters `lta.arithmetic.compositions.merge_adapters` records inputs (name,
    fingerprint), weights, lam, method and space.
  """
  base_model_fingerprint: str
  base_model_name: str
  adapter: dict[str, Any]
  shapes: dict[str, list[int]]
  dtype: str
  task: str
  language: str
  provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
  format_version: int = FORMAT_VERSION
  tensor_sha256: dict[str, str] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if (self.format_version not in READABLE_VERSIONS or
        isinstance(self.format_version, bool)):
      raise CheckpointError(
          f"format_version={self.format_version!r}; this lta reads versions "
          f"{list(READABLE_VERSIONS)}")
    for name in ("base_model_fingerprint", "base_model_name", "task",
                 "language"):
      if not isinstance(getattr(self, name), str):
        raise CheckpointError(f"{name} must be a string, got "
                              f"{getattr(self, name)!r}")
    if self.dtype not in FLOAT_DTYPES:
      raise CheckpointError(f"dtype={self.dtype!r}; adapter weights are one "
                            f"of {list(FLOAT_DTYPES)}")
    for name in ("adapter", "shapes", "provenance", "tensor_sha256"):
      if not isinstance(getattr(self, name), Mapping):
        raise CheckpointError(f"{name} must be a JSON object, got "
                              f"{type(getattr(self, name)).__name__}")
    self._check_shapes()
    self._check_hashes()
    config = self._parse_config()
    problem = config_mismatch(self.shapes, config)
    if problem:
      raise CheckpointError(f"shapes disagree with the adapter config: "
                            f"{problem}")

  def _check_shapes(self):
    for path, shape in self.shapes.items():
      if not (isinstance(shape, (list, tuple)) and
              all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                  for d in shape)):
        raise CheckpointError(f"shapes[{path!r}] must be a list of "
                              f"non-negative ints, got {shape!r}")
    object.__setattr__(self, "shapes",
                       {p: list(s) for p, s in self.shapes.items()})

  def _check_hashes(self):
    hashes = self.tensor_sha256
    if self.format_version < 2 and hashes:
      raise CheckpointError("tensor_sha256 needs format_version 2")
    for path, digest in hashes.items():
      if not _is_sha256(digest):
        raise CheckpointError(f"tensor_sha256[{path!r}] must be 64 lowercase "
                              f"hex digits, got {digest!r}")

  def _parse_config(self) -> AdapterConfig:
    missing = [f for f in AdapterConfig.required_fields()
               if f not in self.adapter]
    if missing:
      raise CheckpointError(f"adapter is missing fields {missing}")
    try:
      return AdapterConfig.from_dict(self.adapter)
    except (TypeError, ValueError) as e:
      raise CheckpointError(f"adapter is not a valid AdapterConfig: "
                            f"{message_of(e)}") from e

  @property
  def config(self) -> AdapterConfig:
    return AdapterConfig.from_dict(self.adapter)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any],
                source: str = "manifest") -> "AdapterManifest":
    """Every field must be present (tensor_sha256 only from version 2)."""
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(fields))
    required = [f for f in fields
                if f != "tensor_sha256" or d.get("format_version") != 1]
    missing = sorted(set(required) - set(d))
    if unknown or missing:
      hint = did_you_mean(unknown[0], missing) if unknown else ""
      raise CheckpointError(f"{source}: missing fields {missing}, unknown "
                            f"fields {unknown}{hint}")
    try:
      return cls(**d)
    except (TypeError, ValueError) as e:
      raise CheckpointError(f"{source}: {message_of(e)}") from e

  @classmethod
  def from_json(cls, text: str, source: str = "manifest") -> "AdapterManifest":
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise CheckpointError(f"{source}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
      raise CheckpointError(f"{source}: expected a JSON object, got "
                            f"{type(d).__name__}")
    return cls.from_dict(d, source)

  @classmethod
  def for_tree(cls, tree: Mapping[str, Any], config: AdapterConfig, *,
               base_model_fingerprint: str, base_model_name: str, task: str,
               language: str,
               provenance: Optional[dict[str, Any]] = None
               ) -> "AdapterManifest":
    """A manifest whose shapes, dtype and hashes are read off `tree`."""
    dtypes = {str(np.asarray(v).dtype) for v in flatten_tree(tree).values()}
    if len(dtypes) != 1:
      raise ValueError(f"Adapter tree mixes dtypes {sorted(dtypes)}")
    return cls(base_model_fingerprint=base_model_fingerprint,
               base_model_name=base_model_name, adapter=config.to_dict(),
               shapes=tree_shapes(tree), dtype=dtypes.pop(), task=task,
               language=language, provenance=dict(provenance or {}),
               tensor_sha256=tree_sha256(tree))


@dataclasses.dataclass(frozen=True)
class Adapter:
  """An adapter tree with its manifest; `name` labels it in error messages."""
  tree: dict[str, Any]
  manifest: AdapterManifest
  name: str = ""

  @property
  def config(self) -> AdapterConfig:
    return self.manifest.config

  @property
  def label(self) -> str:
    if self.name:
      return self.name
    return f"{self.manifest.task}[{self.manifest.language}]"
