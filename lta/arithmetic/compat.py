"""Checks that adapters fit together, run before any arithmetic.

Every check names both inputs and the mismatch; nothing is broadcast or cast
silently. In factor space the stored factors are combined element-wise, so
rank and scale (alpha, rsLoRA) must agree too; in delta space each adapter
becomes its own dW first, so those may differ. A composition's λ and the
role each adapter plays in it (task or language vector, of which language)
are checked here too, against the manifests.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from lta.errors import CheckpointError, ConfigError
from lta.adapters import deltas
from lta.adapters.manifest import Adapter
from lta.adapters.tree import flatten_tree

SPACES = ("factor", "delta")

class IncompatibleAdaptersError(CheckpointError):
  """Two adapters cannot be combined (or one is malformed)."""


def check_adapter(adapter: Adapter) -> None:
  """One adapter on its own: complete tree, agreeing manifest, finite.

  The tree's leaves must have the shapes and dtype its manifest lists, and
  those shapes must be what its config says (rank, Kronecker factors): a
  rank-2 config on rank-4 factors would scale dW by the wrong alpha / r.
  """
  label = adapter.label
  flat = flatten_tree(adapter.tree)
  if not flat:
    raise IncompatibleAdaptersError(f"{label}: adapter tree is empty")
  shapes = {p: list(np.shape(v)) for p, v in flat.items()}
  manifest_shapes = adapter.manifest.shapes
  for path in sorted(set(shapes) & set(manifest_shapes)):
    if shapes[path] != manifest_shapes[path]:
      raise IncompatibleAdaptersError(
          f"{label}: {path} has shape {shapes[path]}, manifest says "
          f"{manifest_shapes[path]}")
    dtype = str(np.asarray(flat[path]).dtype)
    if dtype != adapter.manifest.dtype:
      raise IncompatibleAdaptersError(
          f"{label}: {path} has dtype {dtype}, manifest says "
          f"{adapter.manifest.dtype}")
  problem = deltas.config_mismatch(shapes, adapter.config, allow_delta=False)
  if problem:
    raise IncompatibleAdaptersError(f"{label}: {problem}")
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
  check_finite(adapter.tree, label)


def check_finite(tree: Any, label: str) -> None:
  """Refuses NaN or Inf anywhere in a nested dict of arrays."""
  flat = flatten_tree(tree)
  for path, value in flat.items():
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
      n_nan = int(np.isnan(arr).sum())
      n_inf = int(np.isinf(arr).sum())
      raise IncompatibleAdaptersError(
          f"{label}: {path} holds non-finite values ({n_nan} NaN, {n_inf} "
          "Inf)")


def kron_factor_shapes(adapter: Adapter) -> dict[str, tuple[int, int]]:
  """{module path: (m, n)} of each module's Kronecker A factor."""
  return {path.rpartition("/")[0]: tuple(shape)
          for path, shape in adapter.manifest.shapes.items()
          if path.endswith(f"/{deltas.KRON_A}")}


def _mismatch(a: Adapter, b: Adapter, what: str, va: Any, vb: Any) -> None:
  if va != vb:
    raise IncompatibleAdaptersError(
        f"{a.label} and {b.label} differ in {what}: {va!r} vs {vb!r}")


def check_pair(a: Adapter, b: Adapter, space: str = "factor") -> None:
  """`a` and `b` may be combined in `space`."""
  if space not in SPACES:
    raise ConfigError(f"space={space!r}; expected one of {SPACES}")
  ma, mb = a.manifest, b.manifest
  ca, cb = a.config, b.config
  if ma.base_model_fingerprint != mb.base_model_fingerprint:
    names = ("" if ma.base_model_name == mb.base_model_name else
             f" (base models {ma.base_model_name!r} vs {mb.base_model_name!r})")
    raise IncompatibleAdaptersError(
        f"{a.label} and {b.label} differ in base model fingerprint: "
        f"{ma.base_model_fingerprint!r} vs {mb.base_model_fingerprint!r}"
        f"{names}")
  _mismatch(a, b, "adapter type", ca.kind, cb.kind)
  _mismatch(a, b, "targets", ca.targets, cb.targets)
  _mismatch(a, b, "dtype", ma.dtype, mb.dtype)
  if ca.kind == "krona":
    _check_kron_factors(a, b)
  if not ca.foldable:
    _check_added_layers(a, b, space)
  elif space == "factor":
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


def _check_added_layers(a: Adapter, b: Adapter, space: str) -> None:
  """Prompts or bottlenecks: only element-wise (factor space) arithmetic,
  on the same prompt length or the same placement, width and activation."""
  ca, cb = a.config, b.config
  if space != "factor":
    raise IncompatibleAdaptersError(
        f"{a.label} and {b.label} are {ca.kind} adapters, which have no dW: "
        "combine them in space='factor' (element-wise)")
  if ca.kind == "prompt":
    _mismatch(a, b, "prompt length (num_virtual_tokens)",
              ca.num_virtual_tokens, cb.num_virtual_tokens)
    return
  _mismatch(a, b, "bottleneck placement", ca.bottleneck_placement,
            cb.bottleneck_placement)
  _mismatch(a, b, "bottleneck width", ca.bottleneck_width,
            cb.bottleneck_width)
  _mismatch(a, b, "bottleneck activation", ca.bottleneck_activation,
            cb.bottleneck_activation)


def _check_kron_factors(a: Adapter, b: Adapter) -> None:
  """Each module's A factor (m, n) agrees; modules may differ among
  themselves (PEFT's per-module factorization)."""
  fa, fb = kron_factor_shapes(a), kron_factor_shapes(b)
  for module in sorted(set(fa) & set(fb)):
    _mismatch(a, b, f"Kronecker factors (m, n) of {module}", fa[module],
              fb[module])


def delta_shapes(adapter: Adapter) -> dict[str, tuple[int, int]]:
  """{module path: (in, out)} of the dW each adapted kernel receives."""
  return {module: deltas.kernel_shape(shapes) for module, shapes in
          deltas.modules_of(adapter.manifest.shapes).items()}


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


# --- a composition's λ and labels -------------------------------------------

# Manifest tasks of language vectors (lta.train.loop records the task family:
# 'mc4_prefix_lm.pt' -> task 'mc4_prefix_lm', language 'pt').
LANGUAGE_OBJECTIVES = ("mc4_prefix_lm", "mc4_denoise",
                       "mc4_decoder_prefix_lm")  # decoder-only bases


class MislabelledAdapterError(IncompatibleAdaptersError):
  """An adapter's manifest disagrees with the role it is given."""


def check_lambda(lam: Any, *, allow_extrapolation: bool = False,
                 name: str = "lam",
                 switch: str = "allow_extrapolation=True") -> float:
  """λ as a float: finite, and in [0, 1] unless extrapolation is asked for.

  Outside [0, 1] one side of λ task + (1 - λ) language gets a negative
  weight, which inverts the method; `switch` names how to ask for it.
  """
  try:
    value = float(lam)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"{name}={lam!r} is not a number") from e
  if not math.isfinite(value):
    raise ConfigError(f"{name}={lam!r}: λ must be finite")
  if not allow_extrapolation and not 0.0 <= value <= 1.0:
    raise ConfigError(
        f"{name}={lam!r} is outside [0, 1]: λ task + (1-λ) language would "
        f"weigh the task by {value:g} and the language by {1 - value:g}; "
        f"set {switch} to extrapolate")
  return value


def _same_language(a: str, b: str) -> bool:
  # mC4 task names spell region tags with '_' ('zh_cn'), users with '-'.
  return a.replace("-", "_").lower() == b.replace("-", "_").lower()


def _described(adapter: Adapter) -> str:
  m = adapter.manifest
  return (f"{adapter.label} (manifest: task {m.task!r}, language "
          f"{m.language!r})")


def check_labels(task_vectors: Mapping[str, Adapter],
                 language_vectors: Mapping[str, Adapter], *,
                 allow_unlabelled: bool = False) -> list[str]:
  """Refuses an adapter whose manifest contradicts its role in a composition.

  task_vectors / language_vectors: {language: adapter} as the composition
  uses them. A task vector's manifest names a task (not a language-modelling
  objective) and the language it is keyed under, and all name the same
  task; a language vector's names one of LANGUAGE_OBJECTIVES and its key.
  An empty task or language is refused too, unless `allow_unlabelled` (for
  adapters from before manifests were filled): then the key is trusted.
  Returns the labels of the adapters accepted that way.
  """
  hint = ("; set allow_unlabelled=True to trust the role and language it "
          "is given under")
  unlabelled = []
  tasks: dict[str, str] = {}
  for role, vectors in (("task", task_vectors),
                        ("language", language_vectors)):
    for key, adapter in vectors.items():
      task, language = adapter.manifest.task, adapter.manifest.language
      where = f"{role} vector {key!r}: {_described(adapter)}"
      if not task or not language:
        if not allow_unlabelled:
          raise MislabelledAdapterError(
              f"{where} does not say which "
              f"{'task' if not task else 'language'} it was trained on"
              f"{hint}")
        unlabelled.append(adapter.label)
      is_lm = task in LANGUAGE_OBJECTIVES
      if task and role == "task" and is_lm:
        raise MislabelledAdapterError(
            f"{where} is a language vector, not a task vector")
      if task and role == "language" and not is_lm:
        raise MislabelledAdapterError(
            f"{where} was not trained on a language-modelling objective "
            f"{LANGUAGE_OBJECTIVES}")
      if language and not _same_language(language, key):
        raise MislabelledAdapterError(
            f"{where} is a {language!r} {role} vector, given as {key!r}")
      if task and role == "task":
        tasks[key] = task
  if len(set(tasks.values())) > 1:
    raise MislabelledAdapterError(
        f"The task vectors were trained on different tasks: {tasks}")
  return unlabelled
