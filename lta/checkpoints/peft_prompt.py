"""lta prompt adapters <-> HuggingFace PEFT prompt tuning (mT5).

PEFT stores one tensor, `prompt_embeddings`, of shape (num_virtual_tokens *
num_transformer_submodules, token_dim); a seq2seq model has two submodules,
but prompt tuning only ever reads the first num_virtual_tokens rows, which
it prepends to the encoder's input embeddings (the attention mask gets as
many leading ones): exactly lta's kind='prompt' leaf 'encoder/prompt'.
Import keeps those rows; export writes them followed by zero rows for the
unused decoder half. Initialisation fields (prompt_tuning_init, its text and
tokenizer) only matter before training and are not kept.
`lta.checkpoints.hf_peft` dispatches PROMPT_TUNING files here.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

import numpy as np
from safetensors.numpy import save_file

from lta.adapters import added_layers
from lta.adapters.config import AdapterConfig
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


def import_prompt(cfg: Mapping[str, Any], config_path: str,
                  weights: Mapping[str, np.ndarray], weights_path: str,
                  family_name: str, model_config: Any = None
                  ) -> tuple[AdapterConfig, dict[str, Any]]:
  """(AdapterConfig(kind='prompt'), {'encoder': {'prompt': (n, d)}})."""
  if family_name != "mt5":
    raise CheckpointError(
        f"{config_path}: a prompt-tuning adapter on {family_name}; lta's "
        "prompt adapters are built for mT5 (task_type SEQ_2_SEQ_LM)")
  n = _positive_int(cfg, "num_virtual_tokens", config_path)
  dim = _positive_int(cfg, "token_dim", config_path)
  submodules = _positive_int(cfg, "num_transformer_submodules", config_path,
                             SEQ2SEQ_SUBMODULES)
  if set(weights) != {WEIGHT}:
    raise CheckpointError(f"{weights_path}: a prompt-tuning adapter holds "
                          f"only {WEIGHT!r}, got {sorted(weights)}")
  table = np.asarray(weights[WEIGHT])
  if table.shape != (n * submodules, dim):
    raise CheckpointError(
        f"{weights_path}: {WEIGHT} has shape {list(table.shape)}; "
        f"{config_path} gives [{n * submodules}, {dim}] (num_virtual_tokens "
        f"{n} x num_transformer_submodules {submodules}, token_dim {dim})")
  if model_config is not None and dim != model_config.d_model:
    raise CheckpointError(
        f"{config_path}: token_dim={dim}, but {model_config.name} has "
        f"d_model={model_config.d_model}")
  prompt = np.array(table[:n], np.float32)
  adapter = AdapterConfig(kind="prompt", num_virtual_tokens=n)
  return adapter, {"encoder": {added_layers.PROMPT: prompt}}


def export_prompt(adapters: Mapping[str, Any], adapter: AdapterConfig,
                  model_config: Any, out_dir: str, base_model_name_or_path: str,
                  config_file: str, weights_file: str) -> None:
  """Writes a PEFT PROMPT_TUNING adapter (SEQ_2_SEQ_LM) for mT5."""
  if not hasattr(model_config, "num_encoder_layers"):
    raise ValueError(f"A prompt adapter exports for mT5 only, not "
                     f"{type(model_config).__name__}")
  prompt = np.asarray(adapters.get("encoder", {}).get(added_layers.PROMPT),
                      np.float32)
  n, dim = adapter.num_virtual_tokens, model_config.d_model
  if prompt.shape != (n, dim):
    raise ValueError(f"Prompt to export has shape {list(prompt.shape)}; the "
                     f"config and base give [{n}, {dim}]")
  table = np.zeros((n * SEQ2SEQ_SUBMODULES, dim), np.float32)
  table[:n] = prompt
  cfg = {"peft_type": PEFT_TYPE, "task_type": "SEQ_2_SEQ_LM",
         "base_model_name_or_path": base_model_name_or_path,
         "num_virtual_tokens": n, "token_dim": dim,
         "num_transformer_submodules": SEQ2SEQ_SUBMODULES,
         "num_attention_heads": model_config.num_heads,
         "num_layers": model_config.num_encoder_layers,
         "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None,
         "tokenizer_name_or_path": None, "tokenizer_kwargs": None,
         "inference_mode": True, "revision": None, "modules_to_save": None,
         "auto_mapping": None}
  os.makedirs(out_dir, exist_ok=True)
  save_file({WEIGHT: table}, os.path.join(out_dir, weights_file),
            metadata={"format": "pt"})
  with open(os.path.join(out_dir, config_file), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)
