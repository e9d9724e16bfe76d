"""Adapter trees on disk: `adapter.safetensors` plus `manifest.json`.

A portable export format: the trainer's orbax checkpoints are converted to
this for sharing and for `lta merge`. Leaves are stored under their
'/'-joined tree paths.

Loading checks the weights against the manifest: names, shapes, dtype, the
content hash of every tensor (format 2), and finite values. A format-1
manifest, written before content hashes existed, still loads, with a
warning that its content is unverified; saving it again
(`save_adapter(d, *load_adapter(d))`) adds the hashes.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
from typing import Any, Mapping

from absl import logging
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from lta.errors import CheckpointError, MissingFileError
from lta.adapters.manifest import (FORMAT_VERSION, Adapter, AdapterManifest,
                               tensor_sha256, tree_shapes)
from lta.adapters.tree import flatten_tree, unflatten_tree

WEIGHTS_FILE = "adapter.safetensors"
MANIFEST_FILE = "manifest.json"


def save_adapter(directory: str, tree: Mapping[str, Any],
                 manifest: AdapterManifest) -> None:
  """Writes the tree and its manifest, with the tree's content hashes.

  Refuses a manifest whose shapes or dtype differ from the tree's, or that
  records the hashes of another tree (build one with
  `AdapterManifest.for_tree`).
  """
  where = f"save_adapter({directory})"
  shapes = tree_shapes(tree)
  if shapes != manifest.shapes:
    diff = sorted((set(shapes) ^ set(manifest.shapes)) |
                  {p for p in shapes if p in manifest.shapes and
                   shapes[p] != manifest.shapes[p]})
    raise ValueError(f"{where}: tree and manifest shapes differ at "
                     f"{diff[:5]}")
  flat = {p: np.ascontiguousarray(np.asarray(v))
          for p, v in flatten_tree(tree).items()}
  wrong_dtype = sorted(p for p, v in flat.items()
                       if str(v.dtype) != manifest.dtype)
  if wrong_dtype:
    raise ValueError(f"{where}: {wrong_dtype[0]} is "
                     f"{flat[wrong_dtype[0]].dtype}; the manifest says "
                     f"{manifest.dtype}")
  hashes = {p: tensor_sha256(v) for p, v in flat.items()}
  stale = sorted(p for p, h in manifest.tensor_sha256.items()
                 if hashes.get(p) != h)
  if stale:
    raise ValueError(f"{where}: the manifest records the content of another "
                     f"tree (e.g. {stale[0]}); build it for this tree with "
                     "AdapterManifest.for_tree")
  manifest = dataclasses.replace(manifest, tensor_sha256=hashes,
                                 format_version=FORMAT_VERSION)
  os.makedirs(directory, exist_ok=True)
  save_file(flat, os.path.join(directory, WEIGHTS_FILE))
  with open(os.path.join(directory, MANIFEST_FILE), "w") as f:
    f.write(manifest.to_json())


def _read_manifest(path: str) -> AdapterManifest:
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{path}: cannot read the manifest ({e})") from e
  return AdapterManifest.from_json(text, source=path)


def _read_weights(path: str) -> dict[str, np.ndarray]:
  try:
    return load_file(path)
  except (SafetensorError, OSError, ValueError, TypeError) as e:
    reason = " ".join(str(e).split())
    raise CheckpointError(f"{path}: not a readable safetensors file "
                          f"({reason})") from e


def _check_against_manifest(flat, manifest, weights_path, manifest_path):
  shapes = {p: list(v.shape) for p, v in flat.items()}
  missing = sorted(set(manifest.shapes) - set(shapes))
  extra = sorted(set(shapes) - set(manifest.shapes))
  wrong = sorted(p for p in set(shapes) & set(manifest.shapes)
                 if shapes[p] != manifest.shapes[p])
  if missing or extra or wrong:
    detail = (f"; {wrong[0]} is {shapes[wrong[0]]}, the manifest says "
              f"{manifest.shapes[wrong[0]]}" if wrong else "")
    raise CheckpointError(
        f"{weights_path} does not match {manifest_path}: missing "
        f"{missing[:5]}, unexpected {extra[:5]}, wrong shape {wrong[:5]}"
        f"{detail}")
  for path, value in flat.items():
    if str(value.dtype) != manifest.dtype:
      raise CheckpointError(
          f"{weights_path}: tensor {path} has dtype {value.dtype}; "
          f"{manifest_path} says {manifest.dtype}")


def _check_content(flat, manifest, weights_path, manifest_path):
  if manifest.format_version >= 2:
    odd = sorted(set(manifest.tensor_sha256) ^ set(flat))
    if odd:
      raise CheckpointError(
          f"{manifest_path}: tensor_sha256 must list exactly the tensors of "
          f"{weights_path}; it differs at {odd[:3]}")
    for path in sorted(flat):
      if tensor_sha256(flat[path]) != manifest.tensor_sha256[path]:
        raise CheckpointError(
            f"{weights_path}: tensor {path} does not match its sha256 in "
            f"{manifest_path}; the file was modified or corrupted")
  else:
    logging.warning("%s: format-%d manifest without content hashes; the "
                    "weights are unverified (saving again adds hashes)",
                    manifest_path, manifest.format_version)
  for path in sorted(flat):
    value = flat[path]
    if not np.all(np.isfinite(value)):
      raise CheckpointError(
          f"{weights_path}: tensor {path} holds non-finite values "
          f"({int(np.isnan(value).sum())} NaN, "
          f"{int(np.isinf(value).sum())} Inf)")


def load_adapter(directory: str) -> tuple[dict[str, Any], AdapterManifest]:
  """Reads (tree, manifest); checks the weights against the manifest."""
  manifest_path = os.path.join(directory, MANIFEST_FILE)
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  for path in (manifest_path, weights_path):
    if not os.path.isfile(path):
      raise MissingFileError(f"Adapter file not found: {path}")
  manifest = _read_manifest(manifest_path)
  flat = _read_weights(weights_path)
  _check_against_manifest(flat, manifest, weights_path, manifest_path)
  _check_content(flat, manifest, weights_path, manifest_path)
  return unflatten_tree(flat), manifest


class AdapterDirs(collections.abc.Mapping):
  """{language: Adapter} read from {language: adapter directory} on first use.

  A vectors file may list adapters a composition does not use (not trained
  yet, say): only the ones looked up are read, and `loaded()` are those.
  """

  def __init__(self, paths: Mapping[str, str], kind: str):
    self._paths = dict(paths)
    self._kind = kind
    self._loaded: dict[str, Adapter] = {}

  def __getitem__(self, language: str) -> Adapter:
    if language not in self._loaded:
      path = self._paths[language]
      tree, manifest = load_adapter(path)
      self._loaded[language] = Adapter(
          tree, manifest, name=f"{self._kind}[{language}]={path}")
    return self._loaded[language]

  def __contains__(self, language: object) -> bool:
    return language in self._paths  # without reading it

  def __iter__(self):
    return iter(self._paths)

  def __len__(self) -> int:
    return len(self._paths)

  def loaded(self) -> list[Adapter]:
    return list(self._loaded.values())
