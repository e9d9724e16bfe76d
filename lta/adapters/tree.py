"""Nested dicts of arrays <-> flat {'a/b/leaf': array} dicts.

The one flatten every part of lta uses (parameters, adapters, checkpoints):
paths are '/'-joined string keys, in sorted order, so a flat dict lists the
same tree the same way wherever it was built.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional


def flatten_tree(tree: Mapping[str, Any], prefix: str = "",
                 is_leaf: Optional[Callable[[Any], bool]] = None
                 ) -> dict[str, Any]:
  """Nested dict -> {'a/b/leaf': array}, in sorted key order.

  Any Mapping (dict, FrozenDict) is a node, unless `is_leaf` says it is a
  leaf (a T5X checkpoint's TensorStore spec, say); an empty node leaves no
  path.
  """
  flat = {}
  for key in sorted(tree, key=str):
    if not isinstance(key, str) or "/" in key:
      raise ValueError(f"Tree key {prefix}{key!r} must be a string without "
                       "'/'")
    value = tree[key]
    path = f"{prefix}{key}"
    if isinstance(value, Mapping) and not (is_leaf and is_leaf(value)):
      flat.update(flatten_tree(value, path + "/", is_leaf))
    else:
      flat[path] = value
  return flat


def unflatten_tree(flat: Mapping[str, Any]) -> dict[str, Any]:
  """Inverse of flatten_tree: {'a/b/leaf': array} -> nested dicts."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree
