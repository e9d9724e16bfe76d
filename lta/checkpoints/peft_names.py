"""Which lta kernel each HF PEFT adapter weight adapts: a table per family.

PEFT names an adapter weight after the torch module it wraps, e.g.
`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` on a
Llama. A family's entry says which task_type peft builds for it, how a
module name maps to an lta kernel path and back, which lta regex a list of
peft `target_modules` leaf names stands for, and where its base model's
parameter shapes come from. hf_peft reads these entries and nothing else,
so adding a family is adding a row to FAMILIES.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping, Optional

from lta.adapters import config as adapter_lib
from lta.checkpoints import hf
from lta.checkpoints import layout
from lta.errors import CheckpointError, did_you_mean
from lta.models.bart.config import BartConfig
from lta.models.decoder import network as decoder_network
from lta.models.decoder.config import DecoderConfig
from lta.models.mt5.config import T5Config

SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"  # peft builds a PeftModelForSeq2SeqLM
CAUSAL_LM = "CAUSAL_LM"  # peft builds a PeftModelForCausalLM


@dataclasses.dataclass(frozen=True)
class PeftFamily:
  """How one model family's PEFT module names meet lta's tree.

  to_lta: HF module ('model.layers.0.self_attn.q_proj') -> lta kernel path,
    or None when lta has no such kernel.
  to_hf: the inverse, for export.
  targets_for: lta `targets` regex for a set of peft target_modules leaf
    names ('q_proj', ...), or None when the names are not all known.
  param_shapes: the base model's {path: shape}, from its lta config.
  """
  name: str
  task_type: str
  to_lta: Callable[[str], Optional[str]]
  to_hf: Callable[[str], str]
  targets_for: Callable[[frozenset], Optional[str]]
  param_shapes: Callable[[Any], Mapping[str, tuple[int, ...]]]

  def kernel_shapes(self, model_config) -> dict[str, tuple[int, ...]]:
    return {p: s for p, s in self.param_shapes(model_config).items()
            if p.endswith("/kernel")}


def _either(parts: list[str]) -> Optional[str]:
  if not parts:
    return None
  return parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)


# ------------------------------------------------------------------ mT5 --

_MT5_ATTENTION = ("q", "k", "v", "o")
_MT5_MLP = ("wi", "wi_0", "wi_1", "wo")


def _mt5_targets(names: frozenset) -> Optional[str]:
  if not names <= set(_MT5_ATTENTION + _MT5_MLP + ("lm_head",)):
    return None
  parts = []
  attn = [hf.PROJECTIONS[p] for p in _MT5_ATTENTION if p in names]
  mlp = [p for p in _MT5_MLP if p in names]
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
  return _either(parts)


MT5 = PeftFamily(name="mt5", task_type=SEQ_2_SEQ_LM,
                 to_lta=hf.hf_module_to_lta, to_hf=hf.lta_to_hf_module,
                 targets_for=_mt5_targets, param_shapes=layout.param_shapes)


# --------------------------------------------------------- decoder-only --

# lta's decoder-only stack: decoder/layers_{i}/<module>/kernel, and an
# untied head (lm_head) decoder/logits_dense/kernel.
DECODER_STACK = "decoder"
HEAD, HEAD_KERNEL = "lm_head", "decoder/logits_dense/kernel"
# HF module under model.layers.{i} -> lta module under layers_{i}. Llama,
# Qwen2, Qwen3, Gemma 2 and Gemma 3 (text) all name their projections so.
LLAMA_STYLE_PROJECTIONS = {
    "self_attn.q_proj": "attention/query",
    "self_attn.k_proj": "attention/key",
    "self_attn.v_proj": "attention/value",
    "self_attn.o_proj": "attention/out",
    "mlp.gate_proj": "mlp/wi_0",
    "mlp.up_proj": "mlp/wi_1",
    "mlp.down_proj": "mlp/wo",
}


# A whole block adapted: the regexes lta's gin files use (gin/peft/), which
# match the decoder-only stack's kernels as well as mT5's.
_SHARED_TARGETS = {"attention": adapter_lib.ATTENTION_TARGETS,
                   "mlp": adapter_lib.MLP_TARGETS}


def _decoder_family(name: str, projections: Mapping[str, str],
                    param_shapes) -> PeftFamily:
  """A family whose layers are `model.layers.{i}.<projection>`."""
  to_lta_module = dict(projections)
  to_hf_module = {v: k for k, v in projections.items()}
  module_re = re.compile(r"model\.layers\.(\d+)\.(\w+\.\w+)")
  kernel_re = re.compile(re.escape(DECODER_STACK) + r"/layers_(\d+)/(\w+/\w+)"
                         r"/kernel")
  by_leaf = {hf_name.rsplit(".", 1)[1]: lta for hf_name, lta in
             projections.items()}

  def to_lta(module: str) -> Optional[str]:
    if module == HEAD:
      return HEAD_KERNEL
    m = module_re.fullmatch(module)
    if not m or m.group(2) not in to_lta_module:
      return None
    return f"{DECODER_STACK}/layers_{m.group(1)}/{to_lta_module[m.group(2)]}" \
           "/kernel"

  def to_hf(kernel: str) -> str:
    if kernel == HEAD_KERNEL:
      return HEAD
    m = kernel_re.fullmatch(kernel)
    if not m or m.group(2) not in to_hf_module:
      raise ValueError(f"lta kernel {kernel!r} has no {name} module")
    return f"model.layers.{m.group(1)}.{to_hf_module[m.group(2)]}"

  def targets_for(names: frozenset) -> Optional[str]:
    if not names or not names <= set(by_leaf) | {HEAD}:
      return None
    parts = []
    for block, whole_block in _SHARED_TARGETS.items():
      every = [m for m in projections.values() if m.startswith(block + "/")]
      chosen = [m for m in every if m in {by_leaf[n] for n in names}]
      if chosen and chosen == every:
        parts.append(whole_block)  # what lta's own adapters say
      elif chosen:
        parts.append(rf"{DECODER_STACK}/layers_\d+/{block}/"
                     f"({'|'.join(m.split('/')[1] for m in chosen)})/kernel")
    if HEAD in names:
      parts.append(HEAD_KERNEL)
    return _either(parts)

  return PeftFamily(name=name, task_type=CAUSAL_LM, to_lta=to_lta,
                    to_hf=to_hf, targets_for=targets_for,
                    param_shapes=param_shapes)


def _decoder(family: str) -> PeftFamily:
  # Each decoder-only family names its own table; today all use Llama's.
  return _decoder_family(family, LLAMA_STYLE_PROJECTIONS,
                         decoder_network.param_shapes)


# lta family (T5Config: mt5; DecoderConfig.family) -> its PEFT names.
FAMILIES = {
    "mt5": MT5,
    "llama": _decoder("llama"),
    "qwen2": _decoder("qwen2"),
    "qwen3": _decoder("qwen3"),
    "gemma2": _decoder("gemma2"),
    "gemma3": _decoder("gemma3"),
}
# Without a base model config: the family peft's task_type implies (every
# decoder-only family above shares one name table).
BY_TASK_TYPE = {SEQ_2_SEQ_LM: MT5, CAUSAL_LM: FAMILIES["llama"]}


def family_of(model_config) -> PeftFamily:
  """The family of an lta base-model config (T5Config, DecoderConfig)."""
  if isinstance(model_config, T5Config):
    return MT5
  if isinstance(model_config, BartConfig):
    raise CheckpointError(
        f"HF PEFT import and export cover mT5 and the decoder-only families;"
        f" {model_config.name} ({model_config.model_type}) adapters stay in "
        "lta's format")
  if not isinstance(model_config, DecoderConfig):
    raise TypeError(f"Not an lta model config: {model_config!r}")
  if model_config.family not in FAMILIES:
    raise CheckpointError(
        f"No HF PEFT name table for DecoderConfig.family="
        f"{model_config.family!r}"
        f"{did_you_mean(model_config.family, list(FAMILIES))}")
  return FAMILIES[model_config.family]


def family_for(model_config, task_type: Optional[str],
               source: str) -> PeftFamily:
  """The family of an adapter file: its base's, checked against the file's
  task_type; or, without a base, the one its task_type names."""
  if model_config is not None:
    family = family_of(model_config)
    if task_type not in (None, family.task_type):
      raise CheckpointError(
          f"{source}: task_type={task_type!r}, but the base model is "
          f"{family.name} ({family.task_type!r})")
    return family
  if task_type is None:
    return MT5  # files written before peft recorded a task_type
  if task_type not in BY_TASK_TYPE:
    raise CheckpointError(f"{source}: task_type={task_type!r}; lta imports "
                          f"{sorted(BY_TASK_TYPE)}")
  return BY_TASK_TYPE[task_type]
