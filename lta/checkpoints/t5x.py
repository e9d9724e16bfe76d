"""Imports T5X checkpoints (the published mT5 ones) as lta parameters.

A T5X checkpoint directory `checkpoint_<step>/` comes in two formats:

* T5X's own (all published mT5 checkpoints): a msgpack file `checkpoint`
  (flax.serialization) holding `{'version': 3, 'optimizer': {'target': ...,
  'state': ...}}` (version 0: the state dict at the top level). Small
  arrays are inlined; large ones are replaced by a TensorStore spec, e.g.
  `{'driver': 'zarr', 'kvstore': {'driver': 'file', 'path':
  'target.encoder.layers_0.attention.key.kernel'}, 'metadata': {...}}`,
  whose relative path names a zarr array beside the msgpack file.
* Orbax (newer T5X): a `state/` subdirectory written by orbax's
  PyTreeCheckpointHandler holding the same `{'target': ..., 'state': ...}`.

Only `target` is read: it uses T5X's T5.1.1 names, which lta shares, so the
mapping is the identity; attention kernels T5X stores 2-D `(embed,
heads*kv)`, and a 3-D `(embed, heads, kv)` / `(heads, kv, embed)` kernel is
joined. Unknown, missing and wrong-shape names fail loudly. The model
config is not in a T5X checkpoint (it lives in gin), so the caller passes it.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Mapping

from flax import serialization
import numpy as np
import tensorstore as ts

from lta.checkpoints import layout
from lta.models.mt5.config import T5Config
from lta.adapters.tree import flatten_tree, unflatten_tree

MSGPACK_FILE = "checkpoint"
ORBAX_STATE_DIR = "state"


def _is_ts_spec(value: Any) -> bool:
  return isinstance(value, Mapping) and "driver" in value


def _absolute_spec(spec: Mapping[str, Any], ckpt_dir: str) -> dict:
  """T5X writes relative paths (and maybe a gcs driver); read locally."""
  spec = copy.deepcopy(dict(spec))
  kvstore = dict(spec.get("kvstore") or {})
  relative = kvstore.pop("path", None) or spec.pop("path", None)
  if relative is None:
    raise ValueError(f"TensorStore spec without a path: {spec}")
  if kvstore.get("driver") not in (None, "file", "gfile", "gcs"):
    raise ValueError(f"Unsupported TensorStore kvstore {kvstore}")
  spec["kvstore"] = {"driver": "file",
                     "path": os.path.join(ckpt_dir, relative)}
  metadata = dict(spec.get("metadata") or {})
  # Chunking and compression are read from the stored .zarray instead.
  metadata.pop("chunks", None)
  metadata.pop("compressor", None)
  spec["metadata"] = metadata
  return spec


def _read_spec(spec: Mapping[str, Any], ckpt_dir: str, name: str):
  absolute = _absolute_spec(spec, ckpt_dir)
  where = absolute["kvstore"]["path"]
  if not os.path.isdir(where):
    raise FileNotFoundError(f"T5X parameter {name}: its array {where} is "
                            "missing")
  store = ts.open(absolute, open=True, read=True).result()
  return np.asarray(store.read().result())


def _find(path: str) -> str:
  """The checkpoint_<step> directory for a dir, its `checkpoint` or state."""
  if os.path.isfile(path):
    return os.path.dirname(path) or "."
  if os.path.basename(os.path.normpath(path)) == ORBAX_STATE_DIR:
    return os.path.dirname(os.path.normpath(path))
  if not os.path.isdir(path):
    raise FileNotFoundError(f"No T5X checkpoint at {path}")
  return path


def _read_t5x_msgpack(ckpt_dir: str) -> dict[str, Any]:
  path = os.path.join(ckpt_dir, MSGPACK_FILE)
  with open(path, "rb") as f:
    contents = serialization.msgpack_restore(f.read())
  state = contents["optimizer"] if contents.get("version", 0) else contents
  if "target" not in state:
    raise ValueError(f"{path}: no 'target' (parameters) in the checkpoint; "
                     f"found {sorted(state)}")
  # TensorStore spec dicts stay whole: each is one parameter.
  flat = flatten_tree(state["target"], is_leaf=_is_ts_spec)
  return {name: (_read_spec(value, ckpt_dir, name) if _is_ts_spec(value)
                 else np.asarray(value)) for name, value in flat.items()}


def _read_orbax(state_dir: str) -> dict[str, Any]:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.PyTreeCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(state_dir)
    tree = getattr(metadata, "item_metadata", metadata)
    tree = getattr(tree, "tree", tree)
    if "target" not in tree:
      raise ValueError(f"{state_dir}: no 'target' in the orbax checkpoint; "
                       f"found {sorted(tree)}")
    restore_args = {"target": _numpy_restore_args(tree["target"], ocp)}
    restored = checkpointer.restore(
        state_dir, args=ocp.args.PyTreeRestore(
            item={"target": tree["target"]}, restore_args=restore_args,
            partial_restore=True))
  return {k: np.asarray(v)
          for k, v in flatten_tree(restored["target"]).items()}


def _numpy_restore_args(tree, ocp):
  if isinstance(tree, Mapping):
    return {k: _numpy_restore_args(v, ocp) for k, v in tree.items()}
  return ocp.RestoreArgs(restore_type=np.ndarray)


def _join_heads(name: str, arr: np.ndarray, shape: tuple[int, ...]):
  """Joins a 3-D attention kernel into lta's 2-D (in, out) layout."""
  if arr.ndim == 3 and "attention/" in name:
    joined = ((arr.shape[0] * arr.shape[1], arr.shape[2]) if
              name.endswith("out/kernel") else
              (arr.shape[0], arr.shape[1] * arr.shape[2]))
    if joined == shape:
      return arr.reshape(joined)
  return arr


def load_t5x_checkpoint(path: str, config: T5Config) -> dict[str, Any]:
  """lta params (nested dict, float32 numpy) from a T5X checkpoint.

  `path` is a `checkpoint_<step>` directory, its `checkpoint` msgpack file,
  or its orbax `state` directory.
  """
  ckpt_dir = _find(path)
  if os.path.exists(os.path.join(ckpt_dir, MSGPACK_FILE)):
    flat = _read_t5x_msgpack(ckpt_dir)
  elif os.path.isdir(os.path.join(ckpt_dir, ORBAX_STATE_DIR)):
    flat = _read_orbax(os.path.join(ckpt_dir, ORBAX_STATE_DIR))
  else:
    raise FileNotFoundError(f"{ckpt_dir}: neither a T5X '{MSGPACK_FILE}' "
                            f"file nor an orbax '{ORBAX_STATE_DIR}/' dir")
  expected = layout.param_shapes(config)
  params = {}
  for name, arr in flat.items():
    if name in expected:
      arr = _join_heads(name, arr, expected[name])
    params[name] = np.asarray(arr, np.float32)
  origin = {name: f"target/{name}" for name in params}
  layout.check_complete(params, config, ckpt_dir, origin)
  return unflatten_tree(params)
