"""What an adapter tree is: its base model, config, shapes, task and origin.

A manifest travels with every saved adapter tree (`manifest.json` next to the
weights) so that arithmetic can refuse inputs that do not fit together
(`lta.compat`) and a merged adapter can say what it was made from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Optional

import numpy as np

from lta.peft.config import AdapterConfig

FORMAT_VERSION = 1


def flatten_tree(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """Nested dict -> {'a/b/leaf': array}, in sorted key order."""
  flat = {}
  for key in sorted(tree):
    if not isinstance(key, str) or "/" in key:
      raise ValueError(f"Adapter tree key {prefix}{key!r} must be a string "
                       "without '/'")
    value = tree[key]
    path = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(flatten_tree(value, path + "/"))
    else:
      flat[path] = value
  return flat


def unflatten_tree(flat: Mapping[str, Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def adapter_fingerprint(tree: Mapping[str, Any]) -> str:
  """sha256 over paths, dtypes, shapes and bytes of every leaf."""
  h = hashlib.sha256()
  for path, value in flatten_tree(tree).items():
    arr = np.ascontiguousarray(np.asarray(value))
    h.update(f"{path}|{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
  return "sha256:" + h.hexdigest()


def tree_shapes(tree: Mapping[str, Any]) -> dict[str, list[int]]:
  return {p: list(np.shape(v)) for p, v in flatten_tree(tree).items()}


@dataclasses.dataclass(frozen=True)
class AdapterManifest:
  """Metadata of one adapter tree.

  shapes: {'encoder/layers_0/attention/query/lora_a': [in, r], ...}.
  provenance: free-form for trained adapters (run, step); for merged
    adapters `lta.arithmetic.merge_adapters` records inputs (name,
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

  def __post_init__(self):
    if self.format_version != FORMAT_VERSION:
      raise ValueError(f"AdapterManifest.format_version={self.format_version}; "
                       f"this lta reads version {FORMAT_VERSION}")
    for name in ("base_model_fingerprint", "base_model_name", "dtype", "task",
                 "language"):
      if not isinstance(getattr(self, name), str):
        raise ValueError(f"AdapterManifest.{name} must be a string, got "
                         f"{getattr(self, name)!r}")
    try:
      AdapterConfig.from_dict(self.adapter)
    except (TypeError, ValueError) as e:
      raise ValueError(f"AdapterManifest.adapter is not a valid "
                       f"AdapterConfig: {e}") from e
    for path, shape in self.shapes.items():
      if not (isinstance(shape, (list, tuple)) and
              all(isinstance(d, int) for d in shape)):
        raise ValueError(f"AdapterManifest.shapes[{path!r}] must be a list of "
                         f"ints, got {shape!r}")
    object.__setattr__(self, "shapes",
                       {p: list(s) for p, s in self.shapes.items()})

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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    required = sorted(
        n for n, f in fields.items()
        if f.default is dataclasses.MISSING and
        f.default_factory is dataclasses.MISSING)
    missing = sorted(set(required) - set(d))
    if unknown or missing:
      raise ValueError(f"{source}: missing fields {missing}, unknown fields "
                       f"{unknown}")
    try:
      return cls(**d)
    except ValueError as e:
      raise ValueError(f"{source}: {e}") from e

  @classmethod
  def from_json(cls, text: str, source: str = "manifest") -> "AdapterManifest":
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{source}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
      raise ValueError(f"{source}: expected a JSON object, got "
                       f"{type(d).__name__}")
    return cls.from_dict(d, source)

  @classmethod
  def for_tree(cls, tree: Mapping[str, Any], config: AdapterConfig, *,
               base_model_fingerprint: str, base_model_name: str, task: str,
               language: str,
               provenance: Optional[dict[str, Any]] = None
               ) -> "AdapterManifest":
    """A manifest whose shapes and dtype are read off `tree`."""
    dtypes = {str(np.asarray(v).dtype) for v in flatten_tree(tree).values()}
    if len(dtypes) != 1:
      raise ValueError(f"Adapter tree mixes dtypes {sorted(dtypes)}")
    return cls(base_model_fingerprint=base_model_fingerprint,
               base_model_name=base_model_name, adapter=config.to_dict(),
               shapes=tree_shapes(tree), dtype=dtypes.pop(), task=task,
               language=language, provenance=dict(provenance or {}))


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
