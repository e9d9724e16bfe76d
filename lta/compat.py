"""Checks that adapters fit together, run before any arithmetic.

Every check names both inputs and the mismatch; nothing is broadcast or cast
silently. In factor space the stored factors are combined element-wise, so
rank and scale (alpha, rsLoRA) must agree too; in delta space each adapter
becomes its own dW first, so those may differ.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lta.errors import CheckpointError
from lta.peft.manifest import Adapter, flatten_tree

SPACES = ("factor", "delta")

class IncompatibleAdaptersError(CheckpointError):
  """Two adapters cannot be combined (or one is malformed)."""


def _expected_leaves(adapter: Adapter) -> set[str]:
  cfg = adapter.config
  if cfg.kind == "lora":
    return {"lora_a", "lora_b"}
  if cfg.kron_b_rank is None:
    return {"kron_a", "kron_b"}
  return {"kron_a", "kron_b_down", "kron_b_up"}


def check_adapter(adapter: Adapter) -> None:
  """One adapter on its own: complete tree, agreeing manifest, finite."""
  label = adapter.label
  flat = flatten_tree(adapter.tree)
  if not flat:
    raise IncompatibleAdaptersError(f"{label}: adapter tree is empty")
  expected = _expected_leaves(adapter)
  modules: dict[str, set[str]] = {}
  for path in flat:
    module, _, leaf = path.rpartition("/")
    modules.setdefault(module, set()).add(leaf)
  for module, leaves in sorted(modules.items()):
    if leaves != expected:
      raise IncompatibleAdaptersError(
          f"{label}: partial or foreign adapter at {module!r}: has leaves "
          f"{sorted(leaves)}, a {adapter.config.kind} adapter "
          f"(kron_b_rank={adapter.config.kron_b_rank}) needs "
          f"{sorted(expected)}")
  shapes = {p: list(np.shape(v)) for p, v in flat.items()}
  manifest_shapes = adapter.manifest.shapes
  missing = sorted(set(manifest_shapes) - set(shapes))
  if missing:
    raise IncompatibleAdaptersError(
        f"{label}: tree is missing {len(missing)} leaves its manifest lists, "
        f"e.g. {missing[:3]}")
  extra = sorted(set(shapes) - set(manifest_shapes))
  if extra:
    raise IncompatibleAdaptersError(
        f"{label}: tree has leaves its manifest does not list, e.g. "
        f"{extra[:3]}")
  for path, shape in shapes.items():
    if shape != manifest_shapes[path]:
      raise IncompatibleAdaptersError(
          f"{label}: {path} has shape {shape}, manifest says "
          f"{manifest_shapes[path]}")
    dtype = str(np.asarray(flat[path]).dtype)
    if dtype != adapter.manifest.dtype:
      raise IncompatibleAdaptersError(
          f"{label}: {path} has dtype {dtype}, manifest says "
          f"{adapter.manifest.dtype}")
  for path, value in flat.items():
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
      n_nan = int(np.isnan(arr).sum())
      n_inf = int(np.isinf(arr).sum())
      raise IncompatibleAdaptersError(
          f"{label}: {path} holds non-finite values ({n_nan} NaN, {n_inf} "
          "Inf)")


def _mismatch(a: Adapter, b: Adapter, what: str, va: Any, vb: Any) -> None:
  if va != vb:
    raise IncompatibleAdaptersError(
        f"{a.label} and {b.label} differ in {what}: {va!r} vs {vb!r}")


def check_pair(a: Adapter, b: Adapter, space: str = "factor") -> None:
  """`a` and `b` may be combined in `space`."""
  if space not in SPACES:
    raise ValueError(f"space={space!r}; expected one of {SPACES}")
  ma, mb = a.manifest, b.manifest
  ca, cb = a.config, b.config
  _mismatch(a, b, "base model fingerprint", ma.base_model_fingerprint,
            mb.base_model_fingerprint)
  _mismatch(a, b, "adapter type", ca.kind, cb.kind)
  _mismatch(a, b, "targets", ca.targets, cb.targets)
  _mismatch(a, b, "dtype", ma.dtype, mb.dtype)
  if ca.kind == "krona":
    _mismatch(a, b, "Kronecker factors (m, n)", ca.kron_factors,
              cb.kron_factors)
  if space == "factor":
    if ca.kind == "lora":
      _mismatch(a, b, "rank", ca.rank, cb.rank)
    else:
      _mismatch(a, b, "Kronecker B rank", ca.kron_b_rank, cb.kron_b_rank)
    # Factor arithmetic ignores the scale, so it must be the same.
    _mismatch(a, b, "scale (alpha, rank, rslora)", ca.scale, cb.scale)
  pa, pb = set(ma.shapes), set(mb.shapes)
  if space == "factor":
    if pa != pb:
      only = sorted(pa ^ pb)
      raise IncompatibleAdaptersError(
          f"{a.label} and {b.label} adapt different parameters, e.g. "
          f"{only[:3]}")
    for p in sorted(pa):
      _mismatch(a, b, f"shape of {p}", ma.shapes[p], mb.shapes[p])
    return
  da, db = delta_shapes(a), delta_shapes(b)
  if set(da) != set(db):
    only = sorted(set(da) ^ set(db))
    raise IncompatibleAdaptersError(
        f"{a.label} and {b.label} adapt different kernels, e.g. {only[:3]}")
  for module in sorted(da):
    _mismatch(a, b, f"dW shape of {module}", da[module], db[module])


def delta_shapes(adapter: Adapter) -> dict[str, tuple[int, int]]:
  """{module path: (in, out)} of the dW each adapted kernel receives."""
  modules: dict[str, dict[str, list[int]]] = {}
  for path, shape in adapter.manifest.shapes.items():
    module, _, leaf = path.rpartition("/")
    modules.setdefault(module, {})[leaf] = shape
  out = {}
  for module, s in modules.items():
    if "lora_a" in s:
      out[module] = (s["lora_a"][0], s["lora_b"][1])
    elif "kron_b" in s:
      out[module] = (s["kron_a"][0] * s["kron_b"][0],
                     s["kron_a"][1] * s["kron_b"][1])
    else:
      out[module] = (s["kron_a"][0] * s["kron_b_down"][0],
                     s["kron_a"][1] * s["kron_b_up"][1])
  return out


def check_compatible(adapters: Sequence[Adapter],
                     space: str = "factor") -> None:
  """Each adapter is well formed and every one fits the first."""
  if not adapters:
    raise IncompatibleAdaptersError("No adapters given")
  for adapter in adapters:
    check_adapter(adapter)
  for other in adapters[1:]:
    check_pair(adapters[0], other, space)


def check_base(adapters: Sequence[Adapter], base_fingerprint: str,
               base_path: str) -> None:
  """Refuses an adapter trained on another base model than `base_path`."""
  for a in adapters:
    if a.manifest.base_model_fingerprint != base_fingerprint:
      raise IncompatibleAdaptersError(
          f"{a.label} was trained on base model "
          f"{a.manifest.base_model_name!r} "
          f"({a.manifest.base_model_fingerprint}), not on {base_path} "
          f"({base_fingerprint})")
