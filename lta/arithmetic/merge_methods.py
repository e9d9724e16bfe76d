"""Delta space: combining adapters through the dW they add to each kernel.

Each adapted kernel receives dW = scale * A @ B (LoRA) or
scale * kron(A, B) (Kronecker, B = B_down @ B_up for LoKr). In delta space a
composition sum_i w_i * adapter_i means exactly sum_i w_i * dW_i. The result
is returned as

* a dW tree, `{module path: {"delta": (in, out)}}` mirroring the adapter
  tree, which `lta.adapters.deltas.merge_into_base` folds into the base
  weights like any adapter;
* a LoRA tree of a chosen rank (truncated SVD; exact when the rank is at
  least the rank of the sum); or
* a Kronecker tree: the nearest Kronecker product (Van Loan & Pitsianis,
  1993), exact only when the sum is itself a Kronecker product.

A linear combination of LoRA adapters never materialises dW for the SVD:
sum_i w_i s_i A_i B_i = [w_1 s_1 A_1, ...] @ [B_1; ...] has rank <= sum r_i,
so QR of both stacked factors and an SVD of the small core is exact and
cheap. TIES and DARE act element-wise on each dW, so they materialise it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from lta import errors
from lta.adapters import deltas
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter
from lta.adapters.tree import unflatten_tree

OUTPUTS = ("delta", "lora", "kron")
METHODS = ("linear", "ties", "dare")


def _compute_dtype(dtype) -> np.dtype:
  dtype = np.dtype(dtype)
  return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def modules(tree: Mapping[str, Any]) -> dict[str, dict]:
  """{module path: {leaf: array}} for every adapted kernel of `tree`."""
  return deltas.adapter_modules(tree)


def module_delta(leaves: Mapping[str, Any], config: AdapterConfig,
                 dtype=np.float32) -> np.ndarray:
  """dW (in, out) of one adapted kernel."""
  return deltas.module_delta(leaves, config.scale, dtype=dtype)


def _module_deltas(adapter: Adapter, dtype=None) -> dict[str, np.ndarray]:
  """{module path: dW} (`deltas.adapter_deltas` keys by kernel path)."""
  dtype = dtype or _compute_dtype(adapter.manifest.dtype)
  return {m: module_delta(leaves, adapter.config, dtype)
          for m, leaves in modules(adapter.tree).items()}


def _svd_of_product(left: np.ndarray, right: np.ndarray):
  """SVD of left @ right (left (m, k), right (k, n), k small) via two QRs."""
  ql, rl = np.linalg.qr(left)
  qr, rr = np.linalg.qr(right.T)
  u, s, vt = np.linalg.svd(rl @ rr.T)
  return ql @ u, s, vt @ qr.T


def lora_config_for(config: AdapterConfig, rank: int,
                    scale: float) -> AdapterConfig:
  """`config` at `rank` with alpha chosen so that config.scale == scale."""
  alpha = scale * (math.sqrt(rank) if config.rslora else rank)
  return dataclasses.replace(config, kind="lora", rank=rank, alpha=alpha)


def _split_lora(u, s, vt, rank: int, scale: float, dtype):
  """A, B with scale * A @ B = U_r diag(s_r) V_r^T, balanced magnitudes."""
  r = min(rank, s.shape[0])
  root = np.sqrt(s[:r] / scale)
  a = np.zeros((u.shape[0], rank), dtype)
  b = np.zeros((rank, vt.shape[1]), dtype)
  a[:, :r] = u[:, :r] * root
  b[:r] = root[:, None] * vt[:r]
  return a, b


def refactor_lora(delta: np.ndarray, rank: int, scale: float, dtype=None):
  """Truncated-SVD factors (A, B) with scale * A @ B ~= delta."""
  u, s, vt = np.linalg.svd(np.asarray(delta, np.float64), full_matrices=False)
  return _split_lora(u, s, vt, rank, scale, dtype or delta.dtype)


def _rearrange(delta: np.ndarray, a_shape, b_shape) -> np.ndarray:
  """R[i*n+j, k*q+l] = delta[i*p+k, j*q+l], so kron(A, B) -> vec A vec B^T."""
  (m, n), (p, q) = a_shape, b_shape
  return delta.reshape(m, p, n, q).transpose(0, 2, 1, 3).reshape(m * n, p * q)


def _kron_leaves(u, s, vt, a_shape, b_shape, b_rank, scale, dtype):
  root = math.sqrt(s[0] / scale)
  a = (u[:, 0] * root).reshape(a_shape)
  b = (vt[0] * root).reshape(b_shape)
  if b_rank is None:
    return {deltas.KRON_A: a.astype(dtype), deltas.KRON_B: b.astype(dtype)}
  down, up = refactor_lora(b, b_rank, 1.0, dtype)
  return {deltas.KRON_A: a.astype(dtype), deltas.KRON_B_DOWN: down,
          deltas.KRON_B_UP: up}


def nearest_kronecker(delta: np.ndarray, a_shape, b_shape, scale: float,
                      b_rank: Optional[int] = None, dtype=None) -> dict:
  """Kronecker leaves minimising |scale * kron(A, B) - delta|_F."""
  r = _rearrange(np.asarray(delta, np.float64), a_shape, b_shape)
  u, s, vt = np.linalg.svd(r, full_matrices=False)
  return _kron_leaves(u, s, vt, a_shape, b_shape, b_rank, scale,
                      dtype or delta.dtype)


def ties(deltas: Sequence[np.ndarray], weights: Sequence[float],
         density: float) -> np.ndarray:
  """TIES-merging (Yadav et al., 2023) of weighted deltas.

  Trim: keep the top `density` fraction of each delta by magnitude. Elect:
  per entry, the sign of the summed weighted mass. Disjoint merge: sum the
  weighted entries that agree with the elected sign, rescaled by
  sum|w| / sum over agreeing |w|; with equal weights 1/N this is the mean of
  the agreeing entries, and without sign conflicts it is the plain weighted
  sum.
  """
  if not 0.0 < density <= 1.0:
    raise errors.ConfigError(f"TIES density must be in (0, 1], got {density}")
  trimmed = []
  for d in deltas:
    d = np.asarray(d)
    k = int(math.ceil(density * d.size))
    if k >= d.size:
      trimmed.append(d)
      continue
    threshold = np.partition(np.abs(d).ravel(), d.size - k)[d.size - k]
    trimmed.append(np.where(np.abs(d) >= threshold, d, 0))
  weighted = np.stack([w * t for w, t in zip(weights, trimmed)])
  sign = np.sign(weighted.sum(0))
  agree = (np.sign(weighted) == sign) & (weighted != 0)
  abs_w = np.abs(np.asarray(weights, weighted.dtype)).reshape(
      (-1,) + (1,) * (weighted.ndim - 1))
  agree_mass = (agree * abs_w).sum(0)
  total = float(np.abs(np.asarray(weights)).sum())
  summed = np.where(agree, weighted, 0).sum(0)
  rescale = total / np.maximum(agree_mass, 1e-30)
  return np.where(agree_mass > 0, summed * rescale, 0).astype(weighted.dtype)


def dare(delta: np.ndarray, drop_rate: float,
         rng: np.random.Generator) -> np.ndarray:
  """DARE (Yu et al., 2024): drop entries with prob p, rescale by 1/(1-p)."""
  if not 0.0 <= drop_rate < 1.0:
    raise errors.ConfigError(
        f"DARE drop_rate must be in [0, 1), got {drop_rate}")
  keep = rng.random(delta.shape) >= drop_rate
  return np.where(keep, delta / (1.0 - drop_rate), 0).astype(delta.dtype)


def combine_deltas(adapters: Sequence[Adapter], weights: Sequence[float], *,
                   method: str = "linear", density: float = 0.2,
                   drop_rate: float = 0.9, seed: int = 0,
                   dtype=None) -> dict[str, np.ndarray]:
  """{module: merged dW} for the weighted adapters with `method`."""
  if method not in METHODS:
    raise errors.ConfigError(
        f"merge method {method!r}; expected one of {METHODS}")
  dtype = dtype or _compute_dtype(adapters[0].manifest.dtype)
  per_adapter = [_module_deltas(a, dtype) for a in adapters]
  merged = {}
  for j, module in enumerate(sorted(per_adapter[0])):
    ds = [d[module] for d in per_adapter]
    if method == "dare":
      ds = [dare(d, drop_rate, np.random.default_rng((seed, i, j)))
            for i, d in enumerate(ds)]
    if method == "ties":
      merged[module] = ties(ds, weights, density)
    else:
      merged[module] = sum(w * d for w, d in zip(weights, ds))
  return merged


def refactor_tree(by_module: Mapping[str, np.ndarray], like: Adapter,
                  output: str, rank: Optional[int] = None, dtype=None
                  ) -> tuple[dict[str, Any], AdapterConfig]:
  """Materialised dW per module -> (tree, config) in `output` form."""
  dtype = np.dtype(dtype or like.manifest.dtype)
  config = like.config
  flat: dict[str, Any] = {}
  if output == "delta":
    for m, d in by_module.items():
      flat[f"{m}/{deltas.DELTA_LEAF}"] = d.astype(dtype)
    return unflatten_tree(flat), config
  if output == "lora":
    if config.kind != "lora":
      raise ValueError("output='lora' needs LoRA inputs; use 'kron' or "
                       f"'delta' for {config.kind} adapters")
    rank = rank or config.rank
    out_config = lora_config_for(config, rank, config.scale)
    for m, d in by_module.items():
      a, b = refactor_lora(d, rank, out_config.scale, dtype)
      flat[f"{m}/{deltas.LORA_A}"], flat[f"{m}/{deltas.LORA_B}"] = a, b
    return unflatten_tree(flat), out_config
  if output == "kron":
    if config.kind != "krona":
      raise ValueError(f"output='kron' needs Kronecker inputs, got "
                       f"{config.kind}")
    shapes = like.manifest.shapes
    for m, d in by_module.items():
      a_shape = tuple(shapes[f"{m}/{deltas.KRON_A}"])
      b_shape = (d.shape[0] // a_shape[0], d.shape[1] // a_shape[1])
      leaves = nearest_kronecker(d, a_shape, b_shape, config.scale,
                                 config.kron_b_rank, dtype)
      flat.update({f"{m}/{k}": v for k, v in leaves.items()})
    return unflatten_tree(flat), config
  raise errors.ConfigError(f"output={output!r}; expected one of {OUTPUTS}")


def linear_lowrank(adapters: Sequence[Adapter], weights: Sequence[float],
                   output: str, rank: Optional[int] = None
                   ) -> tuple[dict[str, Any], AdapterConfig]:
  """Exact linear combination re-factorised without materialising dW.

  LoRA: SVD of the stacked factors. Kronecker: the rearranged dW is
  sum_i w_i s_i vec(A_i) vec(B_i)^T, so its leading singular pair gives the
  nearest Kronecker product directly.
  """
  like = adapters[0]
  config = like.config
  dtype = np.dtype(like.manifest.dtype)
  cdtype = np.float64
  per_adapter = [modules(a.tree) for a in adapters]
  flat: dict[str, Any] = {}
  if output == "lora":
    rank = rank or config.rank
    out_config = lora_config_for(config, rank, config.scale)
    for m in sorted(per_adapter[0]):
      left = np.concatenate(
          [w * a.config.scale * np.asarray(t[m][deltas.LORA_A], cdtype)
           for w, a, t in zip(weights, adapters, per_adapter)], axis=1)
      right = np.concatenate(
          [np.asarray(t[m][deltas.LORA_B], cdtype) for t in per_adapter], axis=0)
      u, s, vt = _svd_of_product(left, right)
      flat[f"{m}/{deltas.LORA_A}"], flat[f"{m}/{deltas.LORA_B}"] = _split_lora(
          u, s, vt, rank, out_config.scale, dtype)
    return unflatten_tree(flat), out_config
  for m in sorted(per_adapter[0]):
    a_shape = np.shape(per_adapter[0][m][deltas.KRON_A])
    left = np.stack(
        [w * a.config.scale * np.asarray(t[m][deltas.KRON_A], cdtype).ravel()
         for w, a, t in zip(weights, adapters, per_adapter)], axis=1)
    bs = [deltas.kron_b(t[m], cdtype) for t in per_adapter]
    right = np.stack([b.ravel() for b in bs], axis=0)
    u, s, vt = _svd_of_product(left, right)
    flat.update({f"{m}/{k}": v for k, v in _kron_leaves(
        u, s, vt, a_shape, bs[0].shape, config.kron_b_rank, config.scale,
        dtype).items()})
  return unflatten_tree(flat), config

