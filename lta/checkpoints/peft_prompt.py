"""lta prompt adapters <-> HuggingFace PEFT prompt tuning (mT5, decoder-only).

PEFT stores one tensor, `prompt_embeddings`, of shape (num_virtual_tokens *
num_transformer_submodules, token_dim). On a seq2seq model (SEQ_2_SEQ_LM)
there are two submodules, but prompt tuning only ever reads the first
num_virtual_tokens rows, which it prepends to the encoder's input
embeddings (the attention mask gets as many leading ones): exactly lta's
kind='prompt' leaf 'encoder/prompt'. On a causal LM (CAUSAL_LM: Llama,
Qwen, Gemma) there is one submodule, and the rows go in front of the
prompt's embeddings: lta's 'decoder/prompt'.
Import keeps those rows; export writes them, followed on seq2seq by zero
rows for the unused decoder half. Initialisation fields
(prompt_tuning_init, its text and tokenizer) only matter before training
and are not kept. `lta.checkpoints.hf_peft` dispatches PROMPT_TUNING files
here.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

import numpy as np
from safetensors.numpy import save_file

from lta.adapters import added_layers
from lta.adapters.config import AdapterConfig
from lta.checkpoints import peft_names
from lta.errors import CheckpointError

PEFT_TYPE = "PROMPT_TUNING"
WEIGHT = "prompt_embeddings"
SEQ2SEQ_SUBMODULES = 2


def _positive_int(cfg: Mapping[str, Any], field: str, source: str,
                  default: Optional[int] = None) -> int:
  value = cfg.get(field, default)
  if value is None and default is not None:
    value = default
  if not (isinstance(value, int) and not isinstance(value, bool) and
          value > 0):
    raise CheckpointError(f"{source}: {field}={value!r}; expected a positive "
                          "integer")
  return value


def _layout(task_type: str) -> tuple[str, int]:
  """(the stack the prompt sits in, peft's num_transformer_submodules)."""
  if task_type == peft_names.SEQ_2_SEQ_LM:
    return "encoder", SEQ2SEQ_SUBMODULES
  return "decoder", 1


def _width(model_config: Any) -> int:
  return getattr(model_config, "d_model", None) or model_config.hidden_size


def import_prompt(cfg: Mapping[str, Any], config_path: str,
                  weights: Mapping[str, np.ndarray], weights_path: str,
                  family: peft_names.PeftFamily, model_config: Any = None
                  ) -> tuple[AdapterConfig, dict[str, Any]]:
  """(AdapterConfig(kind='prompt'), {stack: {'prompt': (n, d)}})."""
  stack, default_submodules = _layout(family.task_type)
  n = _positive_int(cfg, "num_virtual_tokens", config_path)
  dim = _positive_int(cfg, "token_dim", config_path)
  submodules = _positive_int(cfg, "num_transformer_submodules", config_path,
                             default_submodules)
  if set(weights) != {WEIGHT}:
    raise CheckpointError(f"{weights_path}: a prompt-tuning adapter holds "
                          f"only {WEIGHT!r}, got {sorted(weights)}")
  table = np.asarray(weights[WEIGHT])
  if table.shape != (n * submodules, dim):
    raise CheckpointError(
        f"{weights_path}: {WEIGHT} has shape {list(table.shape)}; "
        f"{config_path} gives [{n * submodules}, {dim}] (num_virtual_tokens "
        f"{n} x num_transformer_submodules {submodules}, token_dim {dim})")
  if model_config is not None and dim != _width(model_config):
    field = "d_model" if hasattr(model_config, "d_model") else "hidden_size"
    raise CheckpointError(
        f"{config_path}: token_dim={dim}, but {model_config.name} has "
        f"{field}={_width(model_config)}")
  prompt = np.array(table[:n], np.float32)
  adapter = AdapterConfig(kind="prompt", num_virtual_tokens=n)
  return adapter, {stack: {added_layers.PROMPT: prompt}}


def export_prompt(adapters: Mapping[str, Any], adapter: AdapterConfig,
                  model_config: Any, family: peft_names.PeftFamily,
                  out_dir: str, base_model_name_or_path: str,
                  config_file: str, weights_file: str) -> None:
  """Writes a PEFT PROMPT_TUNING adapter for `family` (mT5: SEQ_2_SEQ_LM;
  a decoder-only family: CAUSAL_LM)."""
  stack, submodules = _layout(family.task_type)
  prompt = np.asarray(adapters.get(stack, {}).get(added_layers.PROMPT),
                      np.float32)
  n, dim = adapter.num_virtual_tokens, _width(model_config)
  if prompt.shape != (n, dim):
    raise ValueError(f"Prompt {stack}/{added_layers.PROMPT} to export has "
                     f"shape {list(prompt.shape)}; the config and base give "
                     f"[{n}, {dim}]")
  table = np.zeros((n * submodules, dim), np.float32)
  table[:n] = prompt
  layers = getattr(model_config, "num_encoder_layers", None)
  cfg = {"peft_type": PEFT_TYPE, "task_type": family.task_type,
         "base_model_name_or_path": base_model_name_or_path,
         "num_virtual_tokens": n, "token_dim": dim,
         "num_transformer_submodules": submodules,
         "num_attention_heads": model_config.num_heads,
         "num_layers": layers or model_config.num_layers,
         "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None,
         "tokenizer_name_or_path": None, "tokenizer_kwargs": None,
         "inference_mode": True, "revision": None, "modules_to_save": None,
         "auto_mapping": None}
  os.makedirs(out_dir, exist_ok=True)
  save_file({WEIGHT: table}, os.path.join(out_dir, weights_file),
            metadata={"format": "pt"})
  with open(os.path.join(out_dir, config_file), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)
