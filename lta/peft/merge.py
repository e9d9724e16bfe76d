"""dW of adapters, and folding it into (or out of) the base kernels."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from lta.peft.config import AdapterConfig
from lta.peft.trainable import flatten, unflatten

LEAVES = {
    "lora": ("lora_a", "lora_b"),
    "krona": ("kron_a", "kron_b"),
    "lokr": ("kron_a", "kron_b_down", "kron_b_up"),
}


def adapter_modules(adapters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """{'encoder/layers_0/attention/query': {'lora_a': .., 'lora_b': ..}}."""
  modules: dict[str, dict[str, Any]] = {}
  for path, leaf in flatten(adapters).items():
    module, name = path.rsplit("/", 1)
    modules.setdefault(module, {})[name] = leaf
  return modules


def layout_of(leaves: Mapping[str, Any], where: str) -> str:
  names = tuple(sorted(leaves))
  for layout, expected in LEAVES.items():
    if names == tuple(sorted(expected)):
      return layout
  raise ValueError(f"Adapter at {where} has leaves {list(names)}; expected "
                   f"one of {[list(v) for v in LEAVES.values()]}.")


def module_delta(leaves: Mapping[str, Any], scale: float, where: str = "?",
                 dtype=np.float32) -> np.ndarray:
  """dW (in, out) of one adapted kernel, scaling the small factor."""
  f = {k: np.asarray(v, dtype) for k, v in leaves.items()}
  layout = layout_of(f, where)
  if layout == "lora":
    return (scale * f["lora_a"]) @ f["lora_b"]
  b = f["kron_b"] if layout == "krona" else f["kron_b_down"] @ f["kron_b_up"]
  return np.kron(scale * f["kron_a"], b)


def adapter_deltas(adapters: Mapping[str, Any], config: AdapterConfig,
                   dtype=np.float32) -> dict[str, np.ndarray]:
  """{kernel_path: dW} for every adapted kernel."""
  return {f"{module}/kernel": module_delta(leaves, config.scale, module, dtype)
          for module, leaves in adapter_modules(adapters).items()}


def add_deltas(params: Mapping[str, Any], deltas: Mapping[str, Any],
               sign: float = 1.0) -> dict[str, Any]:
  """A copy of params with `sign * dW` added to each named kernel.

  Adds in at least float32, so bfloat16 kernels do not lose the update.
  """
  flat = flatten(params)
  for path, delta in deltas.items():
    if path not in flat:
      raise KeyError(f"Adapter targets {path!r}, which the base parameters do "
                     "not have; was it trained on another architecture?")
    kernel = np.asarray(flat[path])
    if kernel.shape != np.shape(delta):
      raise ValueError(f"Adapter dW for {path} has shape {np.shape(delta)}; "
                       f"the base kernel has {kernel.shape}.")
    acc = np.promote_types(kernel.dtype, np.float32)
    merged = kernel.astype(acc) + sign * np.asarray(delta, acc)
    flat[path] = merged.astype(kernel.dtype, copy=False)
  return unflatten(flat)


def merge_into_base(params: Mapping[str, Any], adapters: Mapping[str, Any],
                    config: AdapterConfig) -> dict[str, Any]:
  """W + dW for every adapted kernel; decoding then costs the base model's."""
  return add_deltas(params, adapter_deltas(adapters, config), +1.0)


def unmerge_from_base(params: Mapping[str, Any], adapters: Mapping[str, Any],
                      config: AdapterConfig) -> dict[str, Any]:
  """Inverse of merge_into_base (up to float rounding)."""
  return add_deltas(params, adapter_deltas(adapters, config), -1.0)
