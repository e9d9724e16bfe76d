"""Adapter trees on disk: `adapter.safetensors` plus `manifest.json`.

A portable export format: the trainer's orbax checkpoints are converted to
this for sharing and for `lta merge`. Leaves are stored under their
'/'-joined tree paths.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from lta.peft.manifest import (AdapterManifest, flatten_tree, tree_shapes,
                               unflatten_tree)

WEIGHTS_FILE = "adapter.safetensors"
MANIFEST_FILE = "manifest.json"


def save_adapter(directory: str, tree: Mapping[str, Any],
                 manifest: AdapterManifest) -> None:
  """Writes the tree and its manifest; refuses a manifest that disagrees."""
  shapes = tree_shapes(tree)
  if shapes != manifest.shapes:
    diff = sorted((set(shapes) ^ set(manifest.shapes)) |
                  {p for p in shapes if p in manifest.shapes and
                   shapes[p] != manifest.shapes[p]})
    raise ValueError(f"save_adapter({directory}): tree and manifest shapes "
                     f"differ at {diff[:5]}")
  os.makedirs(directory, exist_ok=True)
  flat = {p: np.ascontiguousarray(np.asarray(v))
          for p, v in flatten_tree(tree).items()}
  save_file(flat, os.path.join(directory, WEIGHTS_FILE))
  with open(os.path.join(directory, MANIFEST_FILE), "w") as f:
    f.write(manifest.to_json())


def load_adapter(directory: str) -> tuple[dict[str, Any], AdapterManifest]:
  """Reads (tree, manifest); checks the weights against the manifest."""
  manifest_path = os.path.join(directory, MANIFEST_FILE)
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  for path in (manifest_path, weights_path):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"Adapter file not found: {path}")
  with open(manifest_path) as f:
    manifest = AdapterManifest.from_json(f.read(), source=manifest_path)
  try:
    flat = load_file(weights_path)
  except (SafetensorError, OSError, ValueError) as e:
    raise ValueError(f"{weights_path}: not a readable safetensors file "
                     f"({e})") from e
  tree = unflatten_tree(flat)
  shapes = tree_shapes(tree)
  missing = sorted(set(manifest.shapes) - set(shapes))
  extra = sorted(set(shapes) - set(manifest.shapes))
  wrong = sorted(p for p in set(shapes) & set(manifest.shapes)
                 if shapes[p] != manifest.shapes[p])
  if missing or extra or wrong:
    raise ValueError(f"{weights_path} does not match {manifest_path}: missing "
                     f"{missing[:5]}, unexpected {extra[:5]}, wrong shape "
                     f"{wrong[:5]}")
  dtypes = {str(v.dtype) for v in flat.values()}
  if dtypes != {manifest.dtype}:
    raise ValueError(f"{weights_path} holds dtypes {sorted(dtypes)} but "
                     f"{manifest_path} says {manifest.dtype!r}")
  return tree, manifest
