"""HuggingFace mBART and M2M100 (NLLB-200) checkpoints <-> lta parameters.

`MBartForConditionalGeneration` and `M2M100ForConditionalGeneration`
directories (config.json + safetensors, sharded or not) load into
lta.models.bart; export writes what transformers' from_pretrained reads.
The name map is explicit (`hf_names`): every HF tensor must map to an lta
parameter and every lta parameter must be filled, or loading fails naming
the tensor and the file. Linear weights are (out, in) in HF and (in, out)
kernels in lta; mBART's final_logits_bias is (1, vocab) in HF.

The head is tied to the embeddings: `model.shared.weight` is the one
table, and copies under `model.{encoder,decoder}.embed_tokens.weight` or
`lm_head.weight` must equal it. M2M100's sinusoidal tables
(`...embed_positions.weights`) are not parameters; transformers rebuilds
them on load, and so does lta.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any, Iterator, Mapping, Optional

import jax
from safetensors.numpy import save_file
import numpy as np

from lta.adapters.config import message_of
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.checkpoints import hf
from lta.errors import CheckpointError, MissingFileError, did_you_mean
from lta.models.bart.config import M2M100, MBART, BartConfig
from lta.models.bart.network import Transformer

ARCHITECTURES = {MBART: "MBartForConditionalGeneration",
                 M2M100: "M2M100ForConditionalGeneration"}
EMBEDDING = "model.shared.weight"
EMBEDDING_COPIES = ("model.encoder.embed_tokens.weight",
                    "model.decoder.embed_tokens.weight", "lm_head.weight")
_DERIVED = re.compile(r"model\.(encoder|decoder)\.embed_positions\.weights")

# How an HF tensor becomes an lta one.
KERNEL, SAME, ROW = "kernel", "same", "row"  # transpose, as is, (1, n)->(n,)

_ATTENTION = {"self_attn": {"encoder": "attention",
                            "decoder": "self_attention"},
              "encoder_attn": {"decoder": "encoder_decoder_attention"}}
_PROJECTIONS = {"q_proj": "query", "k_proj": "key", "v_proj": "value",
                "out_proj": "out"}
_LAYER_NORMS = {"self_attn_layer_norm": {
    "encoder": "pre_attention_layer_norm",
    "decoder": "pre_self_attention_layer_norm"},
                "encoder_attn_layer_norm": {
                    "decoder": "pre_cross_attention_layer_norm"},
                "final_layer_norm": {"encoder": "pre_mlp_layer_norm",
                                     "decoder": "pre_mlp_layer_norm"}}
_MLP = {"fc1": "wi", "fc2": "wo"}
_STACK_NORMS = {"layer_norm": "{stack}_norm",
                "layernorm_embedding": "embedding_norm"}
_NORM_LEAVES = {"weight": "scale", "bias": "bias"}


# ---------------------------------------------------------------- names --


@functools.lru_cache(maxsize=16)
def param_shapes(config: BartConfig) -> dict[str, tuple[int, ...]]:
  """Every base parameter path of lta's network with its shape (traced once
  per config, never materialised)."""
  module = Transformer(config)
  shapes = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), np.ones((1, 2), np.int32),
                          np.ones((1, 2), np.int32)))
  flat = flatten_tree(shapes["params"])
  return {path: tuple(getattr(leaf, "value", leaf).shape)
          for path, leaf in flat.items()}


def _layer_names(stack: str, i: int) -> dict[str, tuple[str, str]]:
  hf_prefix, lta_prefix = f"model.{stack}.layers.{i}", f"{stack}/layers_{i}"
  names = {}
  for hf_attn, per_stack in _ATTENTION.items():
    if stack in per_stack:
      for hf_proj, proj in _PROJECTIONS.items():
        where = f"{lta_prefix}/{per_stack[stack]}/{proj}"
        names[f"{hf_prefix}.{hf_attn}.{hf_proj}.weight"] = (
            f"{where}/kernel", KERNEL)
        names[f"{hf_prefix}.{hf_attn}.{hf_proj}.bias"] = (f"{where}/bias",
                                                          SAME)
  for hf_norm, per_stack in _LAYER_NORMS.items():
    if stack in per_stack:
      for hf_leaf, leaf in _NORM_LEAVES.items():
        names[f"{hf_prefix}.{hf_norm}.{hf_leaf}"] = (
            f"{lta_prefix}/{per_stack[stack]}/{leaf}", SAME)
  for hf_fc, fc in _MLP.items():
    names[f"{hf_prefix}.{hf_fc}.weight"] = (f"{lta_prefix}/mlp/{fc}/kernel",
                                            KERNEL)
    names[f"{hf_prefix}.{hf_fc}.bias"] = (f"{lta_prefix}/mlp/{fc}/bias", SAME)
  return names


def hf_names(config: BartConfig) -> dict[str, tuple[str, str]]:
  """Every HF tensor name of `config`'s model -> (lta path, conversion)."""
  names = {EMBEDDING: ("token_embedder/embedding", SAME)}
  if config.final_logits_bias:
    names["final_logits_bias"] = ("decoder/final_logits_bias", ROW)
  layers = {"encoder": config.num_encoder_layers,
            "decoder": config.num_decoder_layers}
  for stack, count in layers.items():
    if config.learned_positions:
      names[f"model.{stack}.embed_positions.weight"] = (
          f"{stack}/position_embedding", SAME)
    for hf_norm, norm in _STACK_NORMS.items():
      if hf_norm == "layernorm_embedding" and not config.embedding_layer_norm:
        continue
      for hf_leaf, leaf in _NORM_LEAVES.items():
        names[f"model.{stack}.{hf_norm}.{hf_leaf}"] = (
            f"{stack}/{norm.format(stack=stack)}/{leaf}", SAME)
    for i in range(count):
      names.update(_layer_names(stack, i))
  return names


def _hf_shape(shape: tuple[int, ...], conversion: str) -> tuple[int, ...]:
  return {KERNEL: shape[::-1], SAME: shape, ROW: (1,) + shape}[conversion]


def _to_hf(arr: np.ndarray, conversion: str) -> np.ndarray:
  arr = np.asarray(arr, np.float32)
  if conversion == KERNEL:
    arr = arr.T
  elif conversion == ROW:
    arr = arr[None]
  return np.ascontiguousarray(arr)


def _to_lta(arr: np.ndarray, conversion: str) -> np.ndarray:
  arr = np.asarray(arr, np.float32)
  if conversion == KERNEL:
    arr = arr.T
  elif conversion == ROW:
    arr = arr[0]
  return np.ascontiguousarray(arr)


# --------------------------------------------------------------- config --


def _field(hf_config: Mapping[str, Any], key: str, source: str, kind,
           default: Any = None) -> Any:
  value = hf_config.get(key, default)
  if value is None:
    raise CheckpointError(f"{source}: missing field {key!r}")
  ok = (isinstance(value, kind) and not isinstance(value, bool)
        if kind is not bool else isinstance(value, bool))
  if not ok:
    raise CheckpointError(f"{source}: {key}={value!r}; expected "
                          f"{'true or false' if kind is bool else 'a number'}")
  return value


def _same(hf_config, keys, source):
  values = {k: hf_config.get(k) for k in keys}
  if len(set(values.values())) != 1:
    raise CheckpointError(f"{source}: lta needs {' == '.join(keys)}, got "
                          + ", ".join(f"{k}={v!r}" for k, v in values.items()))
  return values[keys[0]]


def config_from_hf(hf_config: Mapping[str, Any], source: str = hf.CONFIG_FILE,
                   name: Optional[str] = None) -> BartConfig:
  """BartConfig from an mBART or M2M100 config.json dict."""
  if not isinstance(hf_config, Mapping):
    raise CheckpointError(f"{source}: expected a JSON object, got "
                          f"{type(hf_config).__name__}")
  model_type = hf_config.get("model_type")
  if model_type not in ARCHITECTURES:
    raise CheckpointError(
        f"{source}: model_type={model_type!r}; lta imports "
        f"{sorted(ARCHITECTURES)} here"
        f"{did_you_mean(str(model_type), ARCHITECTURES)}")
  architectures = hf_config.get("architectures") or [ARCHITECTURES[model_type]]
  if architectures != [ARCHITECTURES[model_type]]:
    raise CheckpointError(
        f"{source}: architectures={architectures!r}; lta imports "
        f"[{ARCHITECTURES[model_type]!r}] for model_type {model_type!r}")
  if not hf_config.get("tie_word_embeddings", True):
    raise CheckpointError(f"{source}: tie_word_embeddings=false; lta's "
                          f"{model_type} ties the head to the embeddings")
  num = (int, float)
  fields = dict(
      model_type=model_type,
      vocab_size=_field(hf_config, "vocab_size", source, int),
      d_model=_field(hf_config, "d_model", source, int),
      num_heads=_same(hf_config, ("encoder_attention_heads",
                                  "decoder_attention_heads"), source),
      d_ff=_same(hf_config, ("encoder_ffn_dim", "decoder_ffn_dim"), source),
      num_encoder_layers=_field(hf_config, "encoder_layers", source, int),
      num_decoder_layers=_field(hf_config, "decoder_layers", source, int),
      max_position_embeddings=_field(hf_config, "max_position_embeddings",
                                     source, int),
      activation=hf_config.get("activation_function"),
      # transformers' defaults when the key is absent.
      scale_embedding=_field(hf_config, "scale_embedding", source, bool,
                             model_type == M2M100),
      dropout_rate=float(_field(hf_config, "dropout", source, num, 0.1)),
      attention_dropout_rate=float(
          _field(hf_config, "attention_dropout", source, num, 0.0)),
      activation_dropout_rate=float(
          _field(hf_config, "activation_dropout", source, num, 0.0)),
      bos_token_id=_field(hf_config, "bos_token_id", source, int, 0),
      pad_token_id=_field(hf_config, "pad_token_id", source, int, 1),
      eos_token_id=_field(hf_config, "eos_token_id", source, int, 2),
      decoder_start_token_id=_field(hf_config, "decoder_start_token_id",
                                    source, int, 2))
  try:
    return BartConfig(name=str(name or model_type), **fields)
  except ValueError as e:
    raise CheckpointError(f"{source}: {message_of(e)}") from e


def config_to_hf(config: BartConfig) -> dict[str, Any]:
  """A config.json that transformers' MBart / M2M100 classes load."""
  c = config
  return {
      "architectures": [ARCHITECTURES[c.model_type]],
      "model_type": c.model_type, "is_encoder_decoder": True,
      "vocab_size": c.vocab_size, "d_model": c.d_model,
      "encoder_layers": c.num_encoder_layers,
      "decoder_layers": c.num_decoder_layers,
      "encoder_attention_heads": c.num_heads,
      "decoder_attention_heads": c.num_heads,
      "encoder_ffn_dim": c.d_ff, "decoder_ffn_dim": c.d_ff,
      "max_position_embeddings": c.max_position_embeddings,
      "activation_function": c.activation,
      "scale_embedding": c.scale_embedding,
      "dropout": c.dropout_rate,
      "attention_dropout": c.attention_dropout_rate,
      "activation_dropout": c.activation_dropout_rate,
      "bos_token_id": c.bos_token_id, "pad_token_id": c.pad_token_id,
      "eos_token_id": c.eos_token_id,
      "decoder_start_token_id": c.decoder_start_token_id,
  }


# ------------------------------------------------------------- mapping --


def _embedding(copies: dict[str, tuple[np.ndarray, str]], source: str
               ) -> tuple[np.ndarray, str]:
  if EMBEDDING in copies:
    first = EMBEDDING
  elif copies and set(copies) != {"lm_head.weight"}:
    first = sorted(n for n in copies if n != "lm_head.weight")[0]
  else:
    raise CheckpointError(f"{source}: missing tensor {EMBEDDING} (or one of "
                          f"{list(EMBEDDING_COPIES[:2])})")
  arr, where = copies[first]
  for other, (copy, other_where) in copies.items():
    if copy.shape != arr.shape or not np.array_equal(copy, arr):
      raise CheckpointError(f"{source}: {other} ({other_where}) differs from "
                            f"{first} ({where}); lta ties them")
  return arr, f"{first} ({where})"


def params_from_tensors(named: Iterator[tuple[str, np.ndarray, str]],
                        config: BartConfig, source: str) -> dict[str, Any]:
  """Nested lta params from (HF name, array, origin) triples."""
  expected = hf_names(config)
  shapes = param_shapes(config)
  flat, origin, unknown, copies = {}, {}, [], {}
  for name, arr, where in named:
    if name == EMBEDDING or name in EMBEDDING_COPIES:
      copies[name] = (arr, where)
      continue
    if config.model_type == M2M100 and _DERIVED.fullmatch(name):
      continue
    if name not in expected:
      unknown.append(f"{name} ({where})"
                     f"{did_you_mean(name, expected)}")
      continue
    path, conversion = expected[name]
    if path in flat:
      raise CheckpointError(f"{source}: {name} appears twice ({origin[path]},"
                            f" {where})")
    want = _hf_shape(shapes[path], conversion)
    if tuple(arr.shape) != want:
      raise CheckpointError(f"{source}: {name} in {where} has shape "
                            f"{tuple(arr.shape)}; expected {want} "
                            f"({config.name})")
    flat[path], origin[path] = _to_lta(arr, conversion), f"{name} ({where})"
  if unknown:
    raise CheckpointError(f"{source}: tensor(s) with no lta counterpart in "
                          f"{config.name}: {unknown[:10]}")
  arr, where = _embedding(copies, source)
  want = shapes["token_embedder/embedding"]
  if tuple(arr.shape) != want:
    raise CheckpointError(f"{source}: {where} has shape {tuple(arr.shape)}; "
                          f"expected {want}")
  flat["token_embedder/embedding"] = np.asarray(arr, np.float32)
  missing = sorted(n for n, (path, _) in expected.items() if path not in flat)
  if missing:
    raise CheckpointError(f"{source}: missing tensor(s) {config.name} has: "
                          f"{missing[:10]}")
  return unflatten_tree(flat)


def load_hf_checkpoint(path: str) -> tuple[BartConfig, dict[str, Any]]:
  """(BartConfig, params) from an HF mBART / M2M100 directory or file."""
  directory, weights, reader = hf.weights_file(path)
  config_path = os.path.join(directory, hf.CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise MissingFileError(f"{weights} has no {hf.CONFIG_FILE} beside it")
  hf_config = hf.read_json(config_path)
  name = (hf_config.get("_name_or_path") if isinstance(hf_config, dict)
          else None) or os.path.basename(os.path.abspath(directory))
  config = config_from_hf(hf_config, config_path, name=str(name))
  return config, params_from_tensors(reader(weights), config, weights)


def save_hf_checkpoint(params: Mapping[str, Any], config: BartConfig,
                       path: str) -> None:
  """Writes config.json + model.safetensors that transformers loads."""
  flat = {k: np.asarray(v) for k, v in flatten_tree(params).items()}
  names = hf_names(config)
  shapes = param_shapes(config)
  extra = sorted(set(flat) - set(shapes))
  missing = sorted(set(shapes) - set(flat))
  if extra or missing:
    raise CheckpointError(f"params to export do not match {config.name}: "
                          f"missing {missing[:10]}, unknown {extra[:10]}")
  tensors = {}
  for name, (lta_path, conversion) in names.items():
    if tuple(flat[lta_path].shape) != shapes[lta_path]:
      raise CheckpointError(
          f"params to export: {lta_path} has shape "
          f"{tuple(flat[lta_path].shape)}; {config.name} needs "
          f"{shapes[lta_path]}")
    tensors[name] = _to_hf(flat[lta_path], conversion)
  os.makedirs(path, exist_ok=True)
  save_file(tensors, os.path.join(path, hf.SAFETENSORS),
            metadata={"format": "pt"})
  with open(os.path.join(path, hf.CONFIG_FILE), "w") as f:
    json.dump(config_to_hf(config), f, indent=2, sort_keys=True)
