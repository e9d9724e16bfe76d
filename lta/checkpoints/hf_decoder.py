"""HuggingFace decoder-only checkpoints (Llama, Qwen2, Qwen3, Gemma 2, Gemma 3) <-> lta.

Architectures (config.json `architectures[0]` / `model_type`):

  LlamaForCausalLM    llama        Qwen2ForCausalLM   qwen2
  Qwen3ForCausalLM    qwen3        Gemma2ForCausalLM  gemma2
  Gemma3ForCausalLM   gemma3_text  (the text model; not the multimodal one)

Each has an explicit name map (HF name -> lta path, HF Linear weights are
(out, in) and lta kernels (in, out)); a tensor the map does not name, or a
name the model needs that the files lack, is a CheckpointError naming it.
Weights come from model.safetensors or a sharded model.safetensors.index
.json (readers shared with lta.checkpoints.hf); exports write either.
Config defaults are transformers' class defaults, so a config.json that
omits a field means what it means to transformers.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Mapping, Optional

import numpy as np
from safetensors.numpy import save_file

from lta import errors
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.checkpoints import hf
from lta.errors import CheckpointError
from lta.models.decoder.config import DecoderConfig
from lta.models.decoder.network import param_shapes

# family -> (architecture, model_type)
ARCHITECTURES = {
    "llama": ("LlamaForCausalLM", "llama"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
    "gemma2": ("Gemma2ForCausalLM", "gemma2"),
    "gemma3": ("Gemma3ForCausalLM", "gemma3_text"),
}
# Releases whose text model lta imports once saved on its own.
_MULTIMODAL = {"Gemma3ForConditionalGeneration": "Gemma3ForCausalLM"}
EMBEDDING = "model.embed_tokens.weight"
HEAD = "lm_head.weight"
_TOP = {EMBEDDING: ("token_embedder/embedding", False),
        "model.norm.weight": ("decoder/decoder_norm/scale", False),
        HEAD: ("decoder/logits_dense/kernel", True)}
_PROJECTIONS = {
    "self_attn.q_proj": "attention/query", "self_attn.k_proj": "attention/key",
    "self_attn.v_proj": "attention/value", "self_attn.o_proj": "attention/out",
    "mlp.gate_proj": "mlp/wi_0", "mlp.up_proj": "mlp/wi_1",
    "mlp.down_proj": "mlp/wo"}
_BIASES = {"self_attn.q_proj.bias": "attention/query/bias",
           "self_attn.k_proj.bias": "attention/key/bias",
           "self_attn.v_proj.bias": "attention/value/bias"}
_QK_NORMS = {"self_attn.q_norm.weight": "attention/query_norm/scale",
             "self_attn.k_norm.weight": "attention/key_norm/scale"}
# Llama's 'post_attention_layernorm' is the norm before the MLP; Gemma's
# is the one after attention, and it has pre/post-feedforward norms too.
_LLAMA_NORMS = {"input_layernorm.weight": "pre_attention_norm/scale",
                "post_attention_layernorm.weight": "pre_mlp_norm/scale"}
_GEMMA_NORMS = {"input_layernorm.weight": "pre_attention_norm/scale",
                "post_attention_layernorm.weight": "post_attention_norm/scale",
                "pre_feedforward_layernorm.weight": "pre_mlp_norm/scale",
                "post_feedforward_layernorm.weight": "post_mlp_norm/scale"}


def layer_name_map(family: str) -> dict[str, tuple[str, bool]]:
  """HF name inside `model.layers.{i}.` -> (lta path inside layers_{i}/,
  transpose?), for one family."""
  names = {f"{hf_name}.weight": (f"{path}/kernel", True)
           for hf_name, path in _PROJECTIONS.items()}
  gemma = family in ("gemma2", "gemma3")
  norms = _GEMMA_NORMS if gemma else _LLAMA_NORMS
  names.update({k: (v, False) for k, v in norms.items()})
  if family == "qwen2":
    names.update({k: (v, False) for k, v in _BIASES.items()})
  if family in ("qwen3", "gemma3"):
    names.update({k: (v, False) for k, v in _QK_NORMS.items()})
  return names


def hf_names(config: DecoderConfig) -> dict[str, tuple[str, bool]]:
  """Every HF tensor name of `config`'s model -> (lta path, transpose?)."""
  names = {k: v for k, v in _TOP.items()
           if k != HEAD or not config.tie_word_embeddings}
  for i in range(config.num_layers):
    for name, (path, transpose) in layer_name_map(config.family).items():
      names[f"model.layers.{i}.{name}"] = (f"decoder/layers_{i}/{path}",
                                           transpose)
  return names


# --------------------------------------------------------------- config --


def _family_of(hf_config: Mapping[str, Any], source: str) -> str:
  architectures = hf_config.get("architectures") or []
  arch = architectures[0] if architectures else None
  model_type = hf_config.get("model_type")
  for family, (known_arch, known_type) in ARCHITECTURES.items():
    if arch == known_arch or (arch is None and model_type == known_type):
      if model_type != known_type:
        raise CheckpointError(f"{source}: architectures {arch!r} with "
                              f"model_type {model_type!r}; expected "
                              f"{known_type!r}")
      return family
  known = [a for a, _ in ARCHITECTURES.values()]
  if arch in _MULTIMODAL:
    raise CheckpointError(
        f"{source}: {arch} is {_MULTIMODAL[arch]}'s multimodal model; lta "
        f"imports its text model: save it as {_MULTIMODAL[arch]} first")
  raise CheckpointError(
      f"{source}: architecture {arch or model_type!r} is not one lta imports "
      f"({', '.join(known)})"
      f"{errors.did_you_mean(str(arch or model_type), known)}")


def _get(hf_config, key, source, default=None, kind=(int,)):
  value = hf_config.get(key, default)
  if value is None and default is None:
    raise CheckpointError(f"{source}: missing field {key!r}")
  if value is not None and (not isinstance(value, kind) or
                            isinstance(value, bool)):
    raise CheckpointError(f"{source}: {key}={value!r}; expected "
                          f"{' or '.join(k.__name__ for k in kind)}")
  return value


def _token_id(hf_config, key, source, default):
  value = hf_config.get(key, default)
  if isinstance(value, list) and value:
    value = value[0]  # Llama 3 instruct lists several eos ids
  if value is None:
    return None
  if not isinstance(value, int) or isinstance(value, bool):
    raise CheckpointError(f"{source}: {key}={value!r}; expected a token id")
  return value


def _rope(hf_config, source) -> dict[str, Any]:
  scaling = hf_config.get("rope_scaling")
  if not scaling:
    return {}
  kind = scaling.get("rope_type", scaling.get("type"))
  if kind == "linear":
    return {"rope_type": "linear", "rope_factor": float(scaling["factor"])}
  if kind == "llama3":
    return {"rope_type": "llama3", "rope_factor": float(scaling["factor"]),
            "rope_low_freq_factor": float(scaling["low_freq_factor"]),
            "rope_high_freq_factor": float(scaling["high_freq_factor"]),
            "rope_original_max_position":
                int(scaling["original_max_position_embeddings"])}
  if kind == "default":
    return {}
  raise CheckpointError(f"{source}: rope_scaling rope_type={kind!r} is not "
                        "supported; expected 'linear' or 'llama3'")


def _layer_types(hf_config, family, num_layers, source):
  types = hf_config.get("layer_types")
  if types:
    return tuple(types)
  if family == "gemma2":
    return tuple("sliding_attention" if (i + 1) % 2 else "full_attention"
                 for i in range(num_layers))
  if family == "gemma3":
    pattern = hf_config.get("_sliding_window_pattern",
                            hf_config.get("sliding_window_pattern", 6))
    return tuple("sliding_attention" if (i + 1) % pattern else
                 "full_attention" for i in range(num_layers))
  if hf_config.get("use_sliding_window"):
    raise CheckpointError(f"{source}: use_sliding_window=true without "
                          "layer_types is not supported")
  return ()


def _refuse_unsupported(hf_config, family, source):
  flags = {"mlp_bias": False}
  if family != "qwen2":
    flags["attention_bias"] = False
  for key, supported in flags.items():
    if hf_config.get(key, supported) != supported:
      raise CheckpointError(f"{source}: {key}={hf_config[key]!r} is not "
                            f"supported for {family}")
  act = hf_config.get("hidden_activation") or hf_config.get("hidden_act")
  gemma = family.startswith("gemma")
  want = "gelu_pytorch_tanh" if gemma else "silu"
  if act is not None and act != want:
    raise CheckpointError(f"{source}: activation {act!r}; lta's {family} "
                          f"uses {want!r}")


def config_from_hf(hf_config: Mapping[str, Any], source: str = hf.CONFIG_FILE,
                   name: Optional[str] = None) -> DecoderConfig:
  """DecoderConfig from a Llama / Qwen2 / Qwen3 / Gemma 2 / Gemma 3 config."""
  if not isinstance(hf_config, Mapping):
    raise CheckpointError(f"{source}: expected a JSON object")
  family = _family_of(hf_config, source)
  _refuse_unsupported(hf_config, family, source)
  gemma = family.startswith("gemma")
  num = (int, float)
  layers = _get(hf_config, "num_hidden_layers", source)
  heads = _get(hf_config, "num_attention_heads", source)
  hidden = _get(hf_config, "hidden_size", source)
  head_dim = hf_config.get("head_dim") or hidden // heads
  layer_types = _layer_types(hf_config, family, layers, source)
  pad = _token_id(hf_config, "pad_token_id", source, 0 if gemma else None)
  eos = _token_id(hf_config, "eos_token_id", source, 1 if gemma else 2)
  fields = dict(
      family=family, vocab_size=_get(hf_config, "vocab_size", source),
      hidden_size=hidden,
      intermediate_size=_get(hf_config, "intermediate_size", source),
      num_layers=layers, num_heads=heads,
      num_kv_heads=_get(hf_config, "num_key_value_heads", source, heads),
      head_dim=head_dim,
      rms_norm_eps=float(_get(hf_config, "rms_norm_eps", source, 1e-6, num)),
      activation="gelu_tanh" if gemma else "silu",
      qkv_bias=family == "qwen2", qk_norm=family in ("qwen3", "gemma3"),
      gemma_norms=gemma, scale_embeddings=gemma,
      tie_word_embeddings=bool(hf_config.get("tie_word_embeddings", gemma)),
      rope_theta=float(_get(hf_config, "rope_theta", source,
                            1e6 if family == "gemma3" else 1e4, num)),
      max_position_embeddings=_get(hf_config, "max_position_embeddings",
                                   source, 8192),
      layer_types=layer_types,
      sliding_window=(_get(hf_config, "sliding_window", source, 4096)
                      if "sliding_attention" in layer_types else None),
      eos_token_id=eos, pad_token_id=eos if pad is None else pad,
      bos_token_id=_token_id(hf_config, "bos_token_id", source,
                             2 if gemma else 1) or 0,
      name=str(name or hf_config.get("_name_or_path") or family),
      **_rope(hf_config, source))
  if gemma:
    fields["query_pre_attn_scalar"] = float(_get(
        hf_config, "query_pre_attn_scalar", source, 256, num))
    caps = {"gemma2": (50.0, 30.0), "gemma3": (None, None)}[family]
    fields["attn_logit_softcap"] = hf_config.get("attn_logit_softcapping",
                                                 caps[0])
    fields["final_logit_softcap"] = hf_config.get("final_logit_softcapping",
                                                  caps[1])
  if family == "gemma3":
    fields["local_rope_theta"] = float(_get(
        hf_config, "rope_local_base_freq", source, 1e4, num))
  try:
    return DecoderConfig(**fields)
  except errors.ConfigError as e:
    raise CheckpointError(f"{source}: {e}") from e


def config_to_hf(config: DecoderConfig) -> dict[str, Any]:
  """The config.json transformers loads `config`'s architecture from."""
  c = config
  arch, model_type = ARCHITECTURES[c.family]
  gemma = c.family.startswith("gemma")
  d = {
      "architectures": [arch], "model_type": model_type,
      "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
      "intermediate_size": c.intermediate_size,
      "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
      "num_key_value_heads": c.num_kv_heads,
      "max_position_embeddings": c.max_position_embeddings,
      "rms_norm_eps": c.rms_norm_eps, "rope_theta": c.rope_theta,
      "tie_word_embeddings": c.tie_word_embeddings,
      "pad_token_id": c.pad_token_id, "eos_token_id": c.eos_token_id,
      "bos_token_id": c.bos_token_id, "attention_bias": c.qkv_bias,
      "dtype": c.param_dtype,
      ("hidden_activation" if gemma else "hidden_act"):
          "gelu_pytorch_tanh" if gemma else "silu",
  }
  if c.family == "qwen2":
    del d["attention_bias"]  # Qwen2 always has q/k/v biases
    if c.head_dim != c.hidden_size // c.num_heads:
      raise CheckpointError(
          f"Qwen2 has no head_dim field: head_dim={c.head_dim} must be "
          f"hidden_size / num_heads = {c.hidden_size // c.num_heads}")
  else:
    d["head_dim"] = c.head_dim
  if c.family == "llama":
    d["mlp_bias"] = False
  if c.rope_type == "linear":
    d["rope_scaling"] = {"rope_type": "linear", "factor": c.rope_factor}
  elif c.rope_type == "llama3":
    d["rope_scaling"] = {
        "rope_type": "llama3", "factor": c.rope_factor,
        "low_freq_factor": c.rope_low_freq_factor,
        "high_freq_factor": c.rope_high_freq_factor,
        "original_max_position_embeddings": c.rope_original_max_position}
  if c.layer_types:
    d["layer_types"] = list(c.layer_types)
    d["sliding_window"] = c.sliding_window
  if gemma:
    d["query_pre_attn_scalar"] = c.query_pre_attn_scalar
    d["attn_logit_softcapping"] = c.attn_logit_softcap
    d["final_logit_softcapping"] = c.final_logit_softcap
  if c.family == "gemma3":
    d["rope_local_base_freq"] = c.local_rope_theta
  return d


# ------------------------------------------------------------- mapping --


def _to_lta(named: Iterator[tuple[str, np.ndarray, str]],
            config: DecoderConfig, source: str) -> dict[str, Any]:
  expected = hf_names(config)
  shapes = param_shapes(config)
  flat, origin, unknown, tied_head = {}, {}, [], None
  for name, arr, where in named:
    if name == HEAD and config.tie_word_embeddings:
      tied_head = (arr, where)  # a tied copy some exporters keep
      continue
    if name not in expected:
      unknown.append(name)
      continue
    path, transpose = expected[name]
    want = shapes[path][::-1] if transpose else shapes[path]
    if tuple(arr.shape) != want:
      raise CheckpointError(f"{source}: {name} in {where} has shape "
                            f"{tuple(arr.shape)}; expected {want}")
    if path in flat:
      raise CheckpointError(f"{source}: {name} appears twice ({origin[path]},"
                            f" {where})")
    arr = np.asarray(arr, np.float32)
    flat[path] = np.ascontiguousarray(arr.T if transpose else arr)
    origin[path] = where
  if unknown:
    hint = errors.did_you_mean(unknown[0], list(expected))
    raise CheckpointError(
        f"{source}: tensor {unknown[0]} has no counterpart in lta's "
        f"{config.family} model{hint}"
        + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
  missing = [n for n, (path, _) in expected.items() if path not in flat]
  if missing:
    raise CheckpointError(
        f"{source}: missing tensor {missing[0]} of the {config.family} "
        f"model" + (f" (and {len(missing) - 1} more)"
                    if len(missing) > 1 else ""))
  if tied_head is not None and not np.array_equal(
      tied_head[0], flat["token_embedder/embedding"]):
    raise CheckpointError(f"{source}: {HEAD} ({tied_head[1]}) differs from "
                          f"{EMBEDDING}, but tie_word_embeddings is true")
  return unflatten_tree(flat)


def read_hf_config(path: str) -> tuple[str, str, Any, dict[str, Any]]:
  """(directory, weights file, reader, config.json dict) of a checkpoint."""
  directory, weights, reader = hf.weights_file(path)
  config_path = os.path.join(directory, hf.CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise errors.MissingFileError(f"{weights} has no {hf.CONFIG_FILE} "
                                  "beside it")
  return directory, weights, reader, hf.read_json(config_path)


def is_decoder_only(hf_config: Any) -> bool:
  """Whether a config.json dict names one of ARCHITECTURES' families."""
  if not isinstance(hf_config, Mapping):
    return False
  archs = hf_config.get("architectures") or []
  known = {a for a, _ in ARCHITECTURES.values()} | set(_MULTIMODAL)
  return (bool(archs) and archs[0] in known) or hf_config.get(
      "model_type") in {t for _, t in ARCHITECTURES.values()}


def load_hf_decoder(path: str) -> tuple[DecoderConfig, dict[str, Any]]:
  """(DecoderConfig, float32 numpy params) of an HF directory or weights file."""
  directory, weights, reader, hf_config = read_hf_config(path)
  config_path = os.path.join(directory, hf.CONFIG_FILE)
  name = hf_config.get("_name_or_path") if isinstance(hf_config, dict) else None
  config = config_from_hf(hf_config, config_path, name=name or os.path.basename(
      os.path.abspath(directory)))
  return config, _to_lta(reader(weights), config, weights)


def _shards(tensors: dict[str, np.ndarray], max_shard_bytes: int):
  shards, current, size = [], {}, 0
  for name, arr in tensors.items():
    if current and size + arr.nbytes > max_shard_bytes:
      shards.append(current)
      current, size = {}, 0
    current[name] = arr
    size += arr.nbytes
  return shards + [current]


def save_hf_decoder(params: Mapping[str, Any], config: DecoderConfig,
                    path: str, max_shard_bytes: Optional[int] = None) -> None:
  """Writes config.json and model.safetensors, or shards and their index
  when the tensors exceed max_shard_bytes (transformers' naming)."""
  flat = {k: np.asarray(v) for k, v in flatten_tree(params).items()}
  want = param_shapes(config)
  missing = sorted(set(want) - set(flat))
  extra = sorted(set(flat) - set(want))
  if missing or extra:
    raise CheckpointError(f"params to export do not match the {config.family}"
                          f" model: missing {missing[:5]}, extra {extra[:5]}")
  tensors = {}
  for name, (lta_path, transpose) in sorted(hf_names(config).items()):
    arr = flat[lta_path].astype(np.float32)
    tensors[name] = np.ascontiguousarray(arr.T if transpose else arr)
  os.makedirs(path, exist_ok=True)
  total = sum(a.nbytes for a in tensors.values())
  if max_shard_bytes is None or total <= max_shard_bytes:
    save_file(tensors, os.path.join(path, hf.SAFETENSORS),
              metadata={"format": "pt"})
  else:
    shards = _shards(tensors, max_shard_bytes)
    weight_map = {}
    for i, shard in enumerate(shards):
      file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
      save_file(shard, os.path.join(path, file), metadata={"format": "pt"})
      weight_map.update({name: file for name in shard})
    with open(os.path.join(path, hf.SAFETENSORS_INDEX), "w") as f:
      json.dump({"metadata": {"total_size": total},
                 "weight_map": weight_map}, f, indent=2, sort_keys=True)
  with open(os.path.join(path, hf.CONFIG_FILE), "w") as f:
    json.dump(config_to_hf(config), f, indent=2, sort_keys=True)
