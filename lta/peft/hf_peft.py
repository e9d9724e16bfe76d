"""lta adapters <-> HuggingFace PEFT adapters (LoRA, LoKr) for T5 / mT5.

A PEFT adapter directory holds `adapter_config.json` and
`adapter_model.safetensors`, with weights named after the torch module, e.g.
`base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight`.
torch keeps Linear weights (out, in) and lta keeps kernels (in, out), so
every factor is transposed:

  LoRA   peft A (r, in), B (out, r); dW = s * B @ A      (s = alpha/r, or
         alpha/sqrt(r) with rsLoRA)  ->  lta lora_a = A^T, lora_b = B^T.
  LoKr   peft dW = (alpha/r) * kron(w1, w2), w2 = w2_a @ w2_b when low-rank.
         kron(A, B)^T = kron(A^T, B^T), so lta kron_a = w1^T and kron_b = w2^T
         (or kron_b_down = w2_b^T, kron_b_up = w2_a^T).

PEFT derives LoKr factor shapes from `decompose_factor`; export searches for
a value that reproduces lta's `kron_factors` and refuses when none does.
Features that change the function an adapter computes and that lta lacks
(DoRA, biases, per-module ranks, decomposed w1, ...) are refused naming the
field; training-only settings (LoKr rank/module dropout) are dropped.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Mapping, Optional

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from lta.checkpoints import hf
from lta.checkpoints import layout
from lta.model.config import T5Config
from lta.peft import config as adapter_lib
from lta.peft.config import AdapterConfig
from lta.peft.merge import module_delta

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PREFIX = "base_model.model."

_LORA_KEYS = {"lora_A.weight": "lora_a", "lora_B.weight": "lora_b"}
_LOKR_KEYS = {"lokr_w1": "kron_a", "lokr_w2": "kron_b",
              "lokr_w2_a": "kron_b_up", "lokr_w2_b": "kron_b_down"}
_KEY_RE = re.compile(re.escape(PREFIX) + r"(.+)\.(lora_[AB]\.weight|lokr_\w+)")

_ATTENTION_HF = ("q", "k", "v", "o")
_MLP_HF = ("wi", "wi_0", "wi_1", "wo")


# ---------------------------------------------------- LoKr factorization --


def peft_factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
  """The (m, n), m * n = dimension, that PEFT's LoKr picks.

  A divisor `factor` is taken as is; otherwise m is the largest divisor
  that is at most sqrt(dimension) and at most `factor` (-1: no limit).
  """
  if factor > 0 and dimension % factor == 0:
    return factor, dimension // factor
  limit = dimension if factor == -1 else factor
  m = max([1] + [d for d in range(2, math.isqrt(dimension) + 1)
                 if dimension % d == 0 and d <= limit])
  return m, dimension // m


def _decompose_factor(kernels: Mapping[str, tuple[int, int]],
                      factors: tuple[int, int]) -> Optional[int]:
  """A decompose_factor for which PEFT picks lta's (m, n) for every kernel."""
  m, n = factors
  for f in (-1, m, n, *range(1, max(m, n) + 1)):
    if all(peft_factorization(fan_in, f)[0] == m and
           peft_factorization(fan_out, f)[0] == n
           for fan_in, fan_out in kernels.values()):
      return f
  return None


# ------------------------------------------------------------- targets --


def _targets_regex(kernels: list[str], target_modules: Any,
                   config: Optional[T5Config]) -> str:
  """An lta `targets` regex matching exactly the adapted kernels."""
  names = (set(target_modules) if isinstance(target_modules, (list, tuple))
           else None)
  if names and names <= set(_ATTENTION_HF + _MLP_HF + ("lm_head",)):
    parts = []
    attn = [hf.PROJECTIONS[p] for p in _ATTENTION_HF if p in names]
    mlp = [p for p in _MLP_HF if p in names]
    if attn == ["query", "key", "value", "out"]:
      parts.append(adapter_lib.ATTENTION_TARGETS)
    elif attn:
      parts.append(r"(encoder|decoder)/layers_\d+/"
                   r"(attention|self_attention|encoder_decoder_attention)/"
                   f"({'|'.join(attn)})/kernel")
    if mlp:
      parts.append(rf"(encoder|decoder)/layers_\d+/mlp/({'|'.join(mlp)})/kernel")
    if "lm_head" in names:
      parts.append("decoder/logits_dense/kernel")
    regex = parts[0] if len(parts) == 1 else "|".join(
        f"(?:{p})" for p in parts)
    if _selects_exactly(regex, kernels, config):
      return regex
  return "|".join(re.escape(k) for k in sorted(kernels))


def _selects_exactly(regex: str, kernels: list[str],
                     config: Optional[T5Config]) -> bool:
  if not all(re.fullmatch(regex, k) for k in kernels):
    return False
  if config is None:
    return True
  model_kernels = [p for p in layout.param_shapes(config)
                   if p.endswith("/kernel")]
  return {p for p in model_kernels if re.fullmatch(regex, p)} == set(kernels)


# --------------------------------------------------------------- import --


def _refuse(cfg: Mapping[str, Any], source: str, field: str, ok) -> None:
  value = cfg.get(field)
  if not ok(value):
    raise ValueError(f"{source}: {field}={value!r} is not supported by lta")


def _check_lora_fields(cfg, source):
  _refuse(cfg, source, "bias", lambda v: v in (None, "none"))
  for field in ("use_dora", "fan_in_fan_out", "lora_bias", "use_qalora"):
    _refuse(cfg, source, field, lambda v: not v)
  for field in ("rank_pattern", "alpha_pattern", "modules_to_save",
                "layer_replication", "trainable_token_indices",
                "target_parameters", "alora_invocation_tokens"):
    _refuse(cfg, source, field, lambda v: not v)


def _check_lokr_fields(cfg, source):
  for field in ("rank_pattern", "alpha_pattern", "modules_to_save"):
    _refuse(cfg, source, field, lambda v: not v)
  _refuse(cfg, source, "decompose_both", lambda v: not v)


def _read_weights(directory: str) -> dict[str, np.ndarray]:
  path = os.path.join(directory, WEIGHTS_FILE)
  if not os.path.exists(path):
    if os.path.exists(os.path.join(directory, "adapter_model.bin")):
      raise ValueError(
          f"{directory} holds adapter_model.bin, a pickle, which lta does not "
          "load; re-save it with peft's save_pretrained(..., "
          "safe_serialization=True).")
    raise FileNotFoundError(f"{directory}: no {WEIGHTS_FILE}")
  with safe_open(path, framework="np") as f:
    return {k: f.get_tensor(k) for k in f.keys()}


def _modules(weights, kind, source) -> dict[str, dict[str, np.ndarray]]:
  """{lta kernel path: {peft leaf: array}}."""
  allowed = _LORA_KEYS if kind == "lora" else _LOKR_KEYS
  modules: dict[str, dict[str, np.ndarray]] = {}
  for key, arr in weights.items():
    m = _KEY_RE.fullmatch(key)
    if not m:
      raise ValueError(f"{source}: unexpected weight {key!r}")
    module, leaf = m.groups()
    if leaf in ("lokr_w1_a", "lokr_w1_b", "lokr_t2"):
      raise ValueError(f"{source}: {key} (decomposed w1 / effective conv) is "
                       "not supported by lta; LoKr needs a full lokr_w1")
    if leaf not in allowed:
      raise ValueError(f"{source}: unexpected weight {key!r} for a "
                       f"{kind} adapter")
    kernel = hf.hf_module_to_lta(module)
    if kernel is None:
      raise ValueError(f"{source}: {key} adapts module {module!r}, which has "
                       "no lta counterpart")
    modules.setdefault(kernel, {})[leaf] = np.asarray(arr, np.float32)
  if not modules:
    raise ValueError(f"{source}: no adapter weights")
  return modules


def _lora_tree(modules, rank, source):
  tree = {}
  for kernel, leaves in modules.items():
    if set(leaves) != set(_LORA_KEYS):
      raise ValueError(f"{source}: {kernel} has {sorted(leaves)}; LoRA needs "
                       "lora_A and lora_B")
    a, b = leaves["lora_A.weight"], leaves["lora_B.weight"]
    if a.shape[0] != rank or b.shape[1] != rank:
      raise ValueError(f"{source}: {kernel} has rank {a.shape[0]}/"
                       f"{b.shape[1]}; adapter_config r={rank}")
    tree[kernel] = {"lora_a": a.T.copy(), "lora_b": b.T.copy()}
  return tree


def _lokr_tree(modules, source):
  tree, factors, low_rank = {}, set(), set()
  for kernel, leaves in modules.items():
    names = set(leaves)
    if names not in ({"lokr_w1", "lokr_w2"},
                     {"lokr_w1", "lokr_w2_a", "lokr_w2_b"}):
      raise ValueError(f"{source}: {kernel} has {sorted(names)}; LoKr needs "
                       "lokr_w1 and lokr_w2 (or lokr_w2_a, lokr_w2_b)")
    entry = {"kron_a": leaves["lokr_w1"].T.copy()}
    if "lokr_w2" in leaves:
      entry["kron_b"] = leaves["lokr_w2"].T.copy()
      low_rank.add(None)
    else:
      entry["kron_b_down"] = leaves["lokr_w2_b"].T.copy()
      entry["kron_b_up"] = leaves["lokr_w2_a"].T.copy()
      low_rank.add(entry["kron_b_down"].shape[1])
    tree[kernel] = entry
    factors.add(entry["kron_a"].shape)
  if len(factors) > 1 or len(low_rank) > 1:
    raise ValueError(f"{source}: modules differ in Kronecker factors "
                     f"{sorted(factors)} or w2 rank {sorted(low_rank, key=str)};"
                     " lta's AdapterConfig has one of each")
  return tree, factors.pop(), low_rank.pop()


def _check_shapes(tree, adapter, config, source):
  shapes = layout.param_shapes(config)
  for kernel, leaves in tree.items():
    if kernel not in shapes:
      raise ValueError(f"{source}: adapts {kernel}, which {config.name} does "
                       "not have")
    got = module_delta(leaves, adapter.scale, kernel).shape
    if got != shapes[kernel]:
      raise ValueError(f"{source}: adapter of {kernel} gives dW {got}; the "
                       f"kernel is {shapes[kernel]}")


def import_peft_adapter(
    directory: str, t5_config: Optional[T5Config] = None
) -> tuple[AdapterConfig, dict[str, Any]]:
  """(AdapterConfig, adapters tree) from a PEFT LoRA / LoKr directory.

  With `t5_config`, shapes are checked against the base model too.
  """
  config_path = os.path.join(directory, CONFIG_FILE)
  with open(config_path) as f:
    cfg = json.load(f)
  source = config_path
  peft_type = cfg.get("peft_type")
  weights = _read_weights(directory)
  if peft_type == "LORA":
    _check_lora_fields(cfg, source)
    rank = int(cfg["r"])
    modules = _modules(weights, "lora", source)
    tree = _lora_tree(modules, rank, source)
    fields = dict(kind="lora", rank=rank, alpha=float(cfg["lora_alpha"]),
                  rslora=bool(cfg.get("use_rslora", False)),
                  dropout_rate=float(cfg.get("lora_dropout") or 0.0))
  elif peft_type == "LOKR":
    _check_lokr_fields(cfg, source)
    rank = int(cfg["r"])
    modules = _modules(weights, "lokr", source)
    tree, factors, b_rank = _lokr_tree(modules, source)
    if b_rank is not None and b_rank != rank:
      raise ValueError(f"{source}: lokr_w2_a/b have rank {b_rank}; r={rank}")
    fields = dict(kind="krona", rank=rank, alpha=float(cfg["alpha"]),
                  kron_factors=tuple(int(d) for d in factors),
                  kron_b_rank=b_rank)
  else:
    raise ValueError(f"{source}: peft_type={peft_type!r}; lta imports 'LORA' "
                     "and 'LOKR' adapters")
  # With layers_to_transform, leaf names alone would claim every layer.
  target_modules = (None if cfg.get("layers_to_transform") is not None else
                    cfg.get("target_modules"))
  targets = _targets_regex(sorted(tree), target_modules, t5_config)
  adapter = AdapterConfig(targets=targets, **fields)
  if t5_config is not None:
    _check_shapes(tree, adapter, t5_config, source)
  flat = {f"{kernel[:-len('/kernel')]}/{leaf}": arr
          for kernel, leaves in tree.items() for leaf, arr in leaves.items()}
  return adapter, layout.unflatten(flat)


# --------------------------------------------------------------- export --


def _kernel_modules(adapters) -> dict[str, dict[str, np.ndarray]]:
  modules: dict[str, dict[str, np.ndarray]] = {}
  for path, leaf in layout.flatten(adapters).items():
    module, name = path.rsplit("/", 1)
    modules.setdefault(f"{module}/kernel", {})[name] = np.asarray(
        leaf, np.float32)
  if not modules:
    raise ValueError("No adapter leaves to export")
  return modules


def _target_modules(kernels: list[str], t5_config: T5Config):
  """peft's target_modules: leaf names when they select exactly `kernels`."""
  hf_modules = [hf.lta_to_hf_module(k) for k in kernels]
  leaf_names = sorted({m.rsplit(".", 1)[-1] for m in hf_modules})
  every = [hf.lta_to_hf_module(p) for p in layout.param_shapes(t5_config)
           if p.endswith("/kernel")]
  selected = {m for m in every if m.rsplit(".", 1)[-1] in leaf_names}
  if selected == set(hf_modules):
    return leaf_names
  # peft full-matches a string against each module name.
  return "|".join(re.escape(m) for m in sorted(hf_modules))


def export_peft_adapter(adapters: Mapping[str, Any],
                        adapter_config: AdapterConfig, t5_config: T5Config,
                        out_dir: str,
                        base_model_name_or_path: Optional[str] = None) -> None:
  """Writes adapter_config.json + adapter_model.safetensors for peft.

  LoRA maps to peft LoRA, KronA (with or without a low-rank B) to LoKr.
  """
  a = adapter_config
  modules = _kernel_modules(adapters)
  kernels = sorted(modules)
  shapes = layout.param_shapes(t5_config)
  for kernel in kernels:
    if kernel not in shapes:
      raise ValueError(f"Adapter of {kernel}: {t5_config.name} has no such "
                       "kernel")
  tensors: dict[str, np.ndarray] = {}
  common = {"base_model_name_or_path": base_model_name_or_path,
            "target_modules": _target_modules(kernels, t5_config),
            "task_type": None, "inference_mode": True, "revision": None,
            "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
            "layers_to_transform": None, "layers_pattern": None}
  if a.kind == "lora":
    for kernel in kernels:
      leaves = _expect(modules[kernel], ("lora_a", "lora_b"), kernel)
      name = PREFIX + hf.lta_to_hf_module(kernel)
      tensors[f"{name}.lora_A.weight"] = leaves["lora_a"].T
      tensors[f"{name}.lora_B.weight"] = leaves["lora_b"].T
    cfg = dict(common, peft_type="LORA", r=a.rank, lora_alpha=a.alpha,
               use_rslora=a.rslora, lora_dropout=a.dropout_rate, bias="none",
               fan_in_fan_out=False, init_lora_weights=True, use_dora=False)
  else:
    cfg = dict(common, peft_type="LOKR",
               **_lokr_export(modules, a, shapes, tensors))
  os.makedirs(out_dir, exist_ok=True)
  save_file({k: np.ascontiguousarray(v, np.float32)
             for k, v in tensors.items()},
            os.path.join(out_dir, WEIGHTS_FILE), metadata={"format": "pt"})
  with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)


def _expect(leaves, names, kernel):
  if set(leaves) != set(names):
    raise ValueError(f"Adapter of {kernel} has leaves {sorted(leaves)}; "
                     f"expected {list(names)}")
  return leaves


def _lokr_export(modules, a: AdapterConfig, shapes, tensors):
  """Fills LoKr tensors; returns the LoKr config fields."""
  kernels = sorted(modules)
  factor = _decompose_factor({k: shapes[k] for k in kernels}, a.kron_factors)
  if factor is None:
    raise ValueError(
        f"kron_factors={a.kron_factors}: PEFT's LoKr derives factors from one "
        "decompose_factor per adapter and no value gives these for kernels "
        f"{sorted({shapes[k] for k in kernels})}; use equal factors (m == n).")
  if a.kron_b_rank:
    r = a.kron_b_rank
    names = ("kron_a", "kron_b_down", "kron_b_up")
  else:
    # peft keeps w2 whole only when r >= max(w2 shape) / 2.
    r = max([a.rank] + [math.ceil(max(shapes[k][0] // a.kron_factors[0],
                                      shapes[k][1] // a.kron_factors[1]) / 2)
                        for k in kernels])
    names = ("kron_a", "kron_b")
  for kernel in kernels:
    leaves = _expect(modules[kernel], names, kernel)
    name = PREFIX + hf.lta_to_hf_module(kernel)
    tensors[f"{name}.lokr_w1"] = leaves["kron_a"].T
    if a.kron_b_rank:
      w2_shape = (shapes[kernel][1] // a.kron_factors[1],
                  shapes[kernel][0] // a.kron_factors[0])
      if not r < max(w2_shape) / 2:
        raise ValueError(
            f"kron_b_rank={r} for {kernel}: peft only factorises w2 "
            f"{w2_shape} when r < {max(w2_shape) / 2}")
      tensors[f"{name}.lokr_w2_a"] = leaves["kron_b_up"].T
      tensors[f"{name}.lokr_w2_b"] = leaves["kron_b_down"].T
    else:
      tensors[f"{name}.lokr_w2"] = leaves["kron_b"].T
  # peft scales by alpha / r; keep lta's scale whatever r peft needs.
  return dict(r=r, alpha=a.scale * r, decompose_factor=factor,
              decompose_both=False, use_effective_conv2d=False,
              rank_dropout=0.0, module_dropout=0.0, rank_dropout_scale=False,
              init_weights=True)
