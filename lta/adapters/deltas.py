"""The adapter leaf table, dW of adapters, and folding it into (or out of)
the base kernels.

LEAVES is the one place that names an adapter's factors: the network
creates them, the config gives their shapes, compatibility checks, merging
and the HF PEFT mapping read them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from lta.adapters import added_layers
from lta.adapters.tree import flatten_tree, unflatten_tree

if TYPE_CHECKING:  # the config reads the leaf table; only types go back
  from lta.adapters.config import AdapterConfig

DELTA_LEAF = "delta"  # a materialised dW, (in, out), in a dW tree
LORA_A, LORA_B = "lora_a", "lora_b"  # dW = s * A @ B
KRON_A, KRON_B = "kron_a", "kron_b"  # dW = s * kron(A, B)
KRON_B_DOWN, KRON_B_UP = "kron_b_down", "kron_b_up"  # B = B_down @ B_up
# Each layout's leaves, in the order AdapterConfig.leaf_shapes lists them.
LEAVES = {
    "lora": (LORA_A, LORA_B),
    "krona": (KRON_A, KRON_B),
    "lokr": (KRON_A, KRON_B_DOWN, KRON_B_UP),
    # Kinds that add layers, not dW (lta.adapters.added_layers).
    "prompt": (added_layers.PROMPT,),
    "bottleneck": added_layers.BOTTLENECK_LEAVES,
}


def modules_of(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """{'m/lora_a': x, 'm/lora_b': y} -> {'m': {'lora_a': x, 'lora_b': y}}."""
  modules: dict[str, dict[str, Any]] = {}
  for path, value in flat.items():
    module, _, leaf = path.rpartition("/")
    modules.setdefault(module, {})[leaf] = value
  return modules


def adapter_modules(adapters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """{'encoder/layers_0/attention/query': {'lora_a': .., 'lora_b': ..}}."""
  return modules_of(flatten_tree(adapters))


def layout_of(leaves: Mapping[str, Any], where: str) -> str:
  names = tuple(sorted(leaves))
  for layout, expected in LEAVES.items():
    if names == tuple(sorted(expected)):
      return layout
  raise ValueError(f"Adapter at {where} has leaves {list(names)}; expected "
                   f"one of {[list(v) for v in LEAVES.values()]}, or "
                   f"{[DELTA_LEAF]} in a dW tree.")


def kron_b(leaves: Mapping[str, Any], dtype=None) -> np.ndarray:
  """A Kronecker adapter's B factor, B_down @ B_up for a low-rank B."""
  if KRON_B in leaves:
    return np.asarray(leaves[KRON_B], dtype)
  return (np.asarray(leaves[KRON_B_DOWN], dtype) @
          np.asarray(leaves[KRON_B_UP], dtype))


def kernel_shape(shapes: Mapping[str, Sequence[int]]) -> tuple[int, int]:
  """(in, out) of the kernel an adapter's leaf shapes {leaf: shape} adapt."""
  if LORA_A in shapes:
    return shapes[LORA_A][0], shapes[LORA_B][1]
  b_in = shapes[KRON_B][0] if KRON_B in shapes else shapes[KRON_B_DOWN][0]
  b_out = shapes[KRON_B][1] if KRON_B in shapes else shapes[KRON_B_UP][1]
  return shapes[KRON_A][0] * b_in, shapes[KRON_A][1] * b_out


def config_mismatch(shapes: Mapping[str, Sequence[int]],
                    config: AdapterConfig,
                    allow_delta: bool = True) -> Optional[str]:
  """How a tree's leaf shapes {path: shape} contradict `config`, or None.

  Every module must be targeted by `config` and have exactly the leaves and
  shapes `config.leaf_shapes` gives for its kernel: a rank, Kronecker
  factor or B rank that differs from the config's is named with both
  values. A dW tree's modules (one 'delta' leaf) only need targeting.
  """
  modules = modules_of({p: [int(d) for d in shape]
                        for p, shape in shapes.items()})
  if not config.foldable:
    return added_layers.mismatch(modules, config)
  layout = config.layout
  for module, leaves in sorted(modules.items()):
    if not config.matches(f"{module}/kernel"):
      return (f"adapter at {module!r} is not among the config's targets "
              f"{config.targets!r}")
    if allow_delta and set(leaves) == {DELTA_LEAF}:
      continue
    if sorted(leaves) != sorted(LEAVES[layout]):
      return (f"partial or foreign adapter at {module!r}: has leaves "
              f"{sorted(leaves)}, a {config.kind} adapter (kron_b_rank="
              f"{config.kron_b_rank}) needs {sorted(LEAVES[layout])}")
    if any(len(s) != 2 for s in leaves.values()):
      return f"adapter at {module!r} has leaves that are not matrices: {leaves}"
    want = config.leaf_shapes(*kernel_shape(leaves))
    for leaf in sorted(leaves):
      if leaves[leaf] != list(want[leaf]):
        return (f"{module}/{leaf} has shape {leaves[leaf]}; the config "
                f"({_config_summary(config)}) gives {list(want[leaf])}")
  return None


def _config_summary(config: AdapterConfig) -> str:
  if config.kind == "lora":
    return f"rank={config.rank}"
  rule = (f"kron_factors={config.kron_factors}"
          if config.kron_factor_rule == "fixed" else
          f"peft factorization, decompose_factor="
          f"{config.kron_decompose_factor}")
  return f"{rule}, kron_b_rank={config.kron_b_rank}"


def module_delta(leaves: Mapping[str, Any], scale: float, where: str = "?",
                 dtype=np.float32) -> np.ndarray:
  """dW (in, out) of one adapted kernel, scaling the small factor.

  A dW tree's module (one DELTA_LEAF, from a delta-space composition) holds
  its dW already scaled: it is returned as it is, in `dtype`.
  """
  f = {k: np.asarray(v, dtype) for k, v in leaves.items()}
  if set(f) == {DELTA_LEAF}:
    return f[DELTA_LEAF]
  layout = layout_of(f, where)
  if layout in ("prompt", "bottleneck"):
    raise ValueError(f"{layout} adapter at {where} has no dW")
  if layout == "lora":
    return (scale * f[LORA_A]) @ f[LORA_B]
  return np.kron(scale * f[KRON_A], kron_b(f))


def adapter_deltas(adapters: Mapping[str, Any], config: AdapterConfig,
                   dtype=np.float32) -> dict[str, np.ndarray]:
  """{kernel_path: dW} for every adapted kernel.

  A prompt or bottleneck adapter has no dW: only an identity bottleneck
  passes (as no dW at all); anything else is a CheckpointError.
  """
  if not config.foldable:
    added_layers.refuse_fold(adapter_modules(adapters), config)
    return {}
  return {f"{module}/kernel": module_delta(leaves, config.scale, module, dtype)
          for module, leaves in adapter_modules(adapters).items()}


def add_deltas(params: Mapping[str, Any], deltas: Mapping[str, Any],
               sign: float = 1.0) -> dict[str, Any]:
  """A copy of params with `sign * dW` added to each named kernel.

  Adds in at least float32, so bfloat16 kernels do not lose the update.
  """
  flat = flatten_tree(params)
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
  return unflatten_tree(flat)


def merge_into_base(params: Mapping[str, Any], adapters: Mapping[str, Any],
                    config: AdapterConfig) -> dict[str, Any]:
  """W + dW for every adapted kernel; decoding then costs the base model's.

  `adapters` is an adapter tree (LoRA or Kronecker factors) or a dW tree
  (`{module: {DELTA_LEAF: dW}}`, a delta-space composition's output).
  """
  return add_deltas(params, adapter_deltas(adapters, config), +1.0)


def unmerge_from_base(params: Mapping[str, Any], adapters: Mapping[str, Any],
                      config: AdapterConfig) -> dict[str, Any]:
  """Inverse of merge_into_base (up to float rounding)."""
  return add_deltas(params, adapter_deltas(adapters, config), -1.0)
