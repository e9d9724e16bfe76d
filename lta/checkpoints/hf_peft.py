"""lta adapters <-> HuggingFace PEFT adapters (LoRA, LoKr; prompt tuning in
lta.checkpoints.peft_prompt).

For mT5 and the decoder-only families (Llama, Qwen2, Qwen3, Gemma 2,
Gemma 3): lta.checkpoints.peft_names holds one name table per family, chosen
by the base model's config (or, without one, by the file's task_type).
A PEFT adapter directory holds `adapter_config.json` and
`adapter_model.safetensors`, with weights named after the torch module, e.g.
`base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight`
(mT5) or `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`.
torch keeps Linear weights (out, in) and lta keeps kernels (in, out), so
every factor is transposed:

  LoRA   peft A (r, in), B (out, r); dW = s * B @ A      (s = alpha/r, or
         alpha/sqrt(r) with rsLoRA)  ->  lta lora_a = A^T, lora_b = B^T.
  LoKr   peft dW = (alpha/r) * kron(w1, w2), w2 = w2_a @ w2_b when low-rank.
         kron(A, B)^T = kron(A^T, B^T), so lta kron_a = w1^T and kron_b = w2^T
         (or kron_b_down = w2_b^T, kron_b_up = w2_a^T).

PEFT factorizes each module's dimensions with `decompose_factor`, so
modules of different shapes get different factors; import keeps that rule
(AdapterConfig.kron_factor_rule='peft'). Export writes the rule's
decompose_factor, or for fixed lta factors searches for one that reproduces
them and refuses when none does. Features that change the function an
adapter computes and that lta lacks (DoRA, biases, per-module ranks,
decomposed w1, ...) are refused naming the field; training-only settings
(LoKr rank/module dropout) are dropped. Damaged or inconsistent files are a
CheckpointError naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Mapping, Optional

import numpy as np
from safetensors.numpy import save_file

from lta.checkpoints import hf
from lta.checkpoints import peft_names
from lta.checkpoints import peft_prompt
from lta.checkpoints.peft_names import PeftFamily
from lta.errors import CheckpointError, MissingFileError
from lta.adapters import config as adapter_lib
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter
from lta.adapters import deltas
from lta.adapters.deltas import config_mismatch, module_delta
from lta.adapters.tree import flatten_tree, unflatten_tree

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PREFIX = "base_model.model."
# peft's task for encoder-decoder LMs: PeftModelForSeq2SeqLM.
TASK_TYPE = peft_names.SEQ_2_SEQ_LM
_REQUIRED = object()

# peft's tensor name -> lta's leaf; each is the other's transpose.
_LORA_KEYS = {"lora_A.weight": deltas.LORA_A, "lora_B.weight": deltas.LORA_B}
_LOKR_KEYS = {"lokr_w1": deltas.KRON_A, "lokr_w2": deltas.KRON_B,
              "lokr_w2_a": deltas.KRON_B_UP, "lokr_w2_b": deltas.KRON_B_DOWN}
# peft's tensor names of each lta layout (deltas.LEAVES): {layout: names}.
_PEFT_NAMES = {layout: frozenset(key for key, leaf in {**_LORA_KEYS,
                                                       **_LOKR_KEYS}.items()
                                 if leaf in leaves)
               for layout, leaves in deltas.LEAVES.items()}
_KEY_RE = re.compile(re.escape(PREFIX) + r"(.+)\.(lora_[AB]\.weight|lokr_\w+)")

# ---------------------------------------------------- LoKr factorization --


peft_factorization = adapter_lib.factorization


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
                   family: PeftFamily, model_config: Any) -> str:
  """An lta `targets` regex matching exactly the adapted kernels."""
  if isinstance(target_modules, (list, tuple)) and target_modules:
    regex = family.targets_for(frozenset(target_modules))
    if regex and _selects_exactly(regex, kernels, family, model_config):
      return regex
  return "|".join(re.escape(k) for k in sorted(kernels))


def _selects_exactly(regex: str, kernels: list[str], family: PeftFamily,
                     model_config: Any) -> bool:
  if not all(re.fullmatch(regex, k) for k in kernels):
    return False
  if model_config is None:
    return True
  model_kernels = family.kernel_shapes(model_config)
  return {p for p in model_kernels if re.fullmatch(regex, p)} == set(kernels)


# --------------------------------------------------------------- import --


def _refuse(cfg: Mapping[str, Any], source: str, field: str, ok) -> None:
  value = cfg.get(field)
  if not ok(value):
    raise CheckpointError(f"{source}: {field}={value!r} is not supported by "
                          "lta")


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


def _field(cfg, field, source, kind, default=_REQUIRED):
  """cfg[field] checked to be an 'int' (positive), 'number' or 'bool'."""
  if field not in cfg or (cfg[field] is None and default is not _REQUIRED):
    if default is _REQUIRED:
      raise CheckpointError(f"{source}: missing field {field!r}")
    return default
  value = cfg[field]
  ok = {"int": lambda v: _is_int(v) and v > 0,
        "number": lambda v: (isinstance(v, (int, float)) and
                             not isinstance(v, bool) and math.isfinite(v)),
        "bool": lambda v: isinstance(v, bool)}[kind](value)
  if not ok:
    want = {"int": "a positive integer", "number": "a finite number",
            "bool": "true or false"}[kind]
    raise CheckpointError(f"{source}: {field}={value!r}; expected {want}")
  return value


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _read_config(directory: str, model_config: Any
                 ) -> tuple[dict[str, Any], str, PeftFamily]:
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(path):
    raise MissingFileError(f"No PEFT adapter config at {path}")
  try:
    with open(path, encoding="utf-8") as f:
      cfg = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: not a readable JSON file ({e})") from e
  if not isinstance(cfg, dict):
    raise CheckpointError(f"{path}: expected a JSON object, got "
                          f"{type(cfg).__name__}")
  family = peft_names.family_for(model_config, cfg.get("task_type"), path)
  return cfg, path, family


def _read_weights(directory: str) -> tuple[dict[str, np.ndarray], str]:
  path = os.path.join(directory, WEIGHTS_FILE)
  if not os.path.exists(path):
    if os.path.exists(os.path.join(directory, "adapter_model.bin")):
      raise CheckpointError(
          f"{directory} holds adapter_model.bin, a pickle, which lta does "
          "not load; re-save it with peft's save_pretrained(..., "
          "safe_serialization=True).")
    raise MissingFileError(f"{directory}: no {WEIGHTS_FILE}")
  return hf.read_safetensors(path), path


def _modules(weights, kind, source, family: PeftFamily
             ) -> dict[str, dict[str, np.ndarray]]:
  """{lta kernel path: {peft leaf: array}}."""
  allowed = _LORA_KEYS if kind == "lora" else _LOKR_KEYS
  modules: dict[str, dict[str, np.ndarray]] = {}
  for key, arr in weights.items():
    m = _KEY_RE.fullmatch(key)
    if not m:
      raise CheckpointError(f"{source}: unexpected weight {key!r}")
    module, leaf = m.groups()
    if leaf in ("lokr_w1_a", "lokr_w1_b", "lokr_t2"):
      raise CheckpointError(
          f"{source}: {key} (decomposed w1 / effective conv) is not "
          "supported by lta; LoKr needs a full lokr_w1")
    if leaf not in allowed:
      raise CheckpointError(f"{source}: unexpected weight {key!r} for a "
                            f"{kind} adapter")
    kernel = family.to_lta(module)
    if kernel is None:
      raise CheckpointError(f"{source}: {key} adapts module {module!r}, "
                            f"which has no lta counterpart in {family.name}")
    if arr.ndim != 2:
      raise CheckpointError(f"{source}: {key} has shape {list(arr.shape)}; "
                            "a Linear adapter factor is a matrix")
    modules.setdefault(kernel, {})[leaf] = np.asarray(arr, np.float32)
  if not modules:
    raise CheckpointError(f"{source}: no adapter weights")
  return modules


def _lora_tree(modules, rank, source, config_path):
  tree = {}
  for kernel, leaves in modules.items():
    if set(leaves) != _PEFT_NAMES["lora"]:
      raise CheckpointError(f"{source}: {kernel} has {sorted(leaves)}; LoRA "
                            "needs lora_A and lora_B")
    a, b = leaves["lora_A.weight"], leaves["lora_B.weight"]
    if a.shape[0] != rank or b.shape[1] != rank:
      raise CheckpointError(f"{source}: {kernel} has rank {a.shape[0]}/"
                            f"{b.shape[1]}; {config_path} says r={rank}")
    tree[kernel] = {_LORA_KEYS[k]: v.T.copy() for k, v in leaves.items()}
  return tree


def _lokr_tree(modules, r, source, config_path):
  """(tree, kron_b_rank); every module's w2 is whole or split as peft would
  build it for r (split iff r < max(w2 shape) / 2)."""
  tree, low_rank = {}, {}
  for kernel, leaves in modules.items():
    names = set(leaves)
    if names not in (_PEFT_NAMES["krona"], _PEFT_NAMES["lokr"]):
      raise CheckpointError(
          f"{source}: {kernel} has {sorted(names)}; LoKr needs lokr_w1 and "
          "lokr_w2 (or lokr_w2_a, lokr_w2_b)")
    entry = {_LOKR_KEYS[k]: v.T.copy() for k, v in leaves.items()}
    if "lokr_w2" in leaves:
      w2_shape = leaves["lokr_w2"].shape
    else:
      w2_shape = (leaves["lokr_w2_a"].shape[0], leaves["lokr_w2_b"].shape[1])
    split = r < max(w2_shape) / 2
    stored = "whole" if "lokr_w2" in leaves else "split"
    if stored != ("split" if split else "whole"):
      raise CheckpointError(
          f"{source}: {kernel} stores w2 {stored}, but peft builds w2 of "
          f"shape {list(w2_shape)} {'split' if split else 'whole'} for r={r} "
          f"(from {config_path}): split iff r < max(shape) / 2")
    low_rank[kernel] = split
    tree[kernel] = entry
  if len(set(low_rank.values())) > 1:
    whole = sorted(k for k, v in low_rank.items() if not v)
    split = sorted(k for k, v in low_rank.items() if v)
    raise CheckpointError(
        f"{source}: w2 is whole in {whole[0]} but split in {split[0]} (r={r}); "
        "lta's AdapterConfig.kron_b_rank applies to every module")
  return tree, (r if any(low_rank.values()) else None)


def _check_shapes(tree, adapter, family, config, source):
  shapes = family.param_shapes(config)
  for kernel, leaves in tree.items():
    if kernel not in shapes:
      raise CheckpointError(f"{source}: adapts {kernel}, which {config.name} "
                            "does not have")
    got = module_delta(leaves, adapter.scale, kernel).shape
    if got != shapes[kernel]:
      raise CheckpointError(f"{source}: adapter of {kernel} gives dW {got}; "
                            f"the kernel is {shapes[kernel]}")


def import_peft_adapter(
    directory: str, model_config: Any = None
) -> tuple[AdapterConfig, dict[str, Any]]:
  """(AdapterConfig, adapters tree) from a PEFT LoRA / LoKr directory.

  A LoKr adapter keeps PEFT's per-module factors: its config has
  kron_factor_rule='peft' with the file's decompose_factor. With the base
  model's lta config (T5Config or a decoder-only config), the name table is
  its family's and shapes are checked against it too; without one, the
  file's task_type picks the table.
  """
  cfg, config_path, family = _read_config(directory, model_config)
  weights, weights_path = _read_weights(directory)
  peft_type = cfg.get("peft_type")
  if peft_type == peft_prompt.PEFT_TYPE:
    return peft_prompt.import_prompt(cfg, config_path, weights, weights_path,
                                     family, model_config)
  if peft_type == "LORA":
    _check_lora_fields(cfg, config_path)
    rank = _field(cfg, "r", config_path, "int")
    modules = _modules(weights, "lora", weights_path, family)
    tree = _lora_tree(modules, rank, weights_path, config_path)
    fields = dict(
        kind="lora", rank=rank,
        alpha=float(_field(cfg, "lora_alpha", config_path, "number")),
        rslora=_field(cfg, "use_rslora", config_path, "bool", False),
        dropout_rate=float(_field(cfg, "lora_dropout", config_path, "number",
                                  0.0)))
  elif peft_type == "LOKR":
    _check_lokr_fields(cfg, config_path)
    rank = _field(cfg, "r", config_path, "int")
    factor = cfg.get("decompose_factor", -1)
    if not (_is_int(factor) and (factor == -1 or factor > 0)):
      raise CheckpointError(f"{config_path}: decompose_factor={factor!r}; "
                            "expected -1 or a positive integer")
    modules = _modules(weights, "lokr", weights_path, family)
    tree, b_rank = _lokr_tree(modules, rank, weights_path, config_path)
    fields = dict(kind="krona", rank=rank,
                  alpha=float(_field(cfg, "alpha", config_path, "number")),
                  kron_factor_rule="peft", kron_decompose_factor=factor,
                  kron_b_rank=b_rank)
  else:
    raise CheckpointError(f"{config_path}: peft_type={peft_type!r}; lta "
                          "imports 'LORA', 'LOKR' and 'PROMPT_TUNING' "
                          "adapters")
  # With layers_to_transform, leaf names alone would claim every layer.
  target_modules = (None if cfg.get("layers_to_transform") is not None else
                    cfg.get("target_modules"))
  targets = _targets_regex(sorted(tree), target_modules, family,
                           model_config)
  adapter = AdapterConfig(targets=targets, **fields)
  flat = {f"{kernel[:-len('/kernel')]}/{leaf}": arr
          for kernel, leaves in tree.items() for leaf, arr in leaves.items()}
  problem = config_mismatch({p: a.shape for p, a in flat.items()}, adapter,
                            allow_delta=False)
  if problem:
    raise CheckpointError(f"{weights_path} does not fit {config_path} as "
                          f"peft reads it: {problem}")
  if model_config is not None:
    _check_shapes(tree, adapter, family, model_config, weights_path)
  return adapter, unflatten_tree(flat)


# --------------------------------------------------------------- export --


def _kernel_modules(adapters) -> dict[str, dict[str, np.ndarray]]:
  modules: dict[str, dict[str, np.ndarray]] = {}
  for path, leaf in flatten_tree(adapters).items():
    module, name = path.rsplit("/", 1)
    modules.setdefault(f"{module}/kernel", {})[name] = np.asarray(
        leaf, np.float32)
  if not modules:
    raise ValueError("No adapter leaves to export")
  return modules


def _target_modules(kernels: list[str], family: PeftFamily, model_config):
  """peft's target_modules: leaf names when they select exactly `kernels`."""
  hf_modules = [family.to_hf(k) for k in kernels]
  leaf_names = sorted({m.rsplit(".", 1)[-1] for m in hf_modules})
  every = []
  for kernel in family.kernel_shapes(model_config):
    try:
      every.append(family.to_hf(kernel))
    except ValueError:  # a kernel peft cannot target by name (no module)
      continue
  selected = {m for m in every if m.rsplit(".", 1)[-1] in leaf_names}
  if selected == set(hf_modules):
    return leaf_names
  # peft full-matches a string against each module name.
  return "|".join(re.escape(m) for m in sorted(hf_modules))


def export_peft_adapter(adapters: Mapping[str, Any],
                        adapter_config: AdapterConfig, model_config: Any,
                        out_dir: str,
                        base_model_name_or_path: Optional[str] = None) -> None:
  """Writes adapter_config.json + adapter_model.safetensors for peft.

  LoRA maps to peft LoRA, KronA (with or without a low-rank B) to LoKr. The
  config names the base model (default: `model_config.name`) and the
  family's task_type: SEQ_2_SEQ_LM for mT5 (peft builds a
  PeftModelForSeq2SeqLM and AutoPeftModelForSeq2SeqLM finds the base),
  CAUSAL_LM for the decoder-only families (PeftModelForCausalLM).
  """
  family = peft_names.family_of(model_config)
  a = adapter_config
  if a.kind == "bottleneck":
    raise ValueError("PEFT has no bottleneck-adapter type to export to; "
                     "keep bottleneck adapters in lta's format")
  if a.kind == "prompt":
    peft_prompt.export_prompt(adapters, a, model_config, family, out_dir,
                              base_model_name_or_path or model_config.name,
                              CONFIG_FILE, WEIGHTS_FILE)
    return
  problem = config_mismatch(
      {p: np.shape(v) for p, v in flatten_tree(adapters).items()}, a,
      allow_delta=False)
  if problem:
    raise ValueError(f"Adapter to export disagrees with its config: "
                     f"{problem}")
  modules = _kernel_modules(adapters)
  kernels = sorted(modules)
  shapes = family.kernel_shapes(model_config)
  for kernel in kernels:
    if kernel not in shapes:
      raise ValueError(f"Adapter of {kernel}: {model_config.name} has no such "
                       "kernel")
  tensors: dict[str, np.ndarray] = {}
  common = {"base_model_name_or_path": (base_model_name_or_path or
                                        model_config.name),
            "target_modules": _target_modules(kernels, family, model_config),
            "task_type": family.task_type, "inference_mode": True,
            "revision": None,
            "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
            "layers_to_transform": None, "layers_pattern": None}
  if a.kind == "lora":
    for kernel in kernels:
      leaves = modules[kernel]
      name = PREFIX + family.to_hf(kernel)
      for key, leaf in _LORA_KEYS.items():
        tensors[f"{name}.{key}"] = leaves[leaf].T
    cfg = dict(common, peft_type="LORA", r=a.rank, lora_alpha=a.alpha,
               use_rslora=a.rslora, lora_dropout=a.dropout_rate, bias="none",
               fan_in_fan_out=False, init_lora_weights=True, use_dora=False)
  else:
    cfg = dict(common, peft_type="LOKR",
               **_lokr_export(modules, a, shapes, tensors, family))
  os.makedirs(out_dir, exist_ok=True)
  save_file({k: np.ascontiguousarray(v, np.float32)
             for k, v in tensors.items()},
            os.path.join(out_dir, WEIGHTS_FILE), metadata={"format": "pt"})
  with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)


def export_adapter(adapter: Adapter, model_config: Any, out_dir: str,
                   base_model_name_or_path: Optional[str] = None) -> None:
  """export_peft_adapter for an lta adapter; the base model's name defaults
  to its manifest's base_model_name."""
  export_peft_adapter(
      adapter.tree, adapter.config, model_config, out_dir,
      base_model_name_or_path or adapter.manifest.base_model_name)


def _lokr_export(modules, a: AdapterConfig, shapes, tensors,
                 family: PeftFamily):
  """Fills LoKr tensors; returns the LoKr config fields."""
  kernels = sorted(modules)
  if a.kron_factor_rule == "peft":
    factor = a.kron_decompose_factor
  else:
    factor = _decompose_factor({k: shapes[k] for k in kernels},
                               a.kron_factors)
    if factor is None:
      raise ValueError(
          f"kron_factors={a.kron_factors}: PEFT's LoKr derives factors from "
          "one decompose_factor per adapter and no value gives these for "
          f"kernels {sorted({shapes[k] for k in kernels})}; use equal "
          "factors (m == n), or kron_factor_rule='peft'.")
  w2_shapes = {}
  for k in kernels:
    m, n = a.kron_factors_for(*shapes[k])
    w2_shapes[k] = (shapes[k][1] // n, shapes[k][0] // m)  # torch (out, in)
  if a.kron_b_rank:
    r = a.kron_b_rank
    for kernel, w2_shape in w2_shapes.items():
      if not r < max(w2_shape) / 2:
        raise ValueError(
            f"kron_b_rank={r} for {kernel}: peft only factorises w2 "
            f"{w2_shape} when r < {max(w2_shape) / 2}")
  else:
    # peft keeps w2 whole only when r >= max(w2 shape) / 2.
    r = max([a.rank] + [math.ceil(max(s) / 2) for s in w2_shapes.values()])
  for kernel in kernels:
    leaves = modules[kernel]
    name = PREFIX + family.to_hf(kernel)
    for key, leaf in _LOKR_KEYS.items():
      if leaf in leaves:  # kron_b, or kron_b_down and kron_b_up
        tensors[f"{name}.{key}"] = leaves[leaf].T
  # peft scales by alpha / r; keep lta's scale whatever r peft needs.
  return dict(r=r, alpha=a.scale * r, decompose_factor=factor,
              decompose_both=False, use_effective_conv2d=False,
              rank_dropout=0.0, module_dropout=0.0, rank_dropout_scale=False,
              init_weights=True)
