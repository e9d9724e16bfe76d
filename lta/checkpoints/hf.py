"""HuggingFace T5 / mT5 checkpoints <-> lta parameters.

HF names follow the torch modules (`encoder.block.0.layer.0.SelfAttention.q
.weight`, Linear weights (out, in)); lta uses T5X names with (in, out)
kernels. The mapping below is explicit: every HF name must map to an lta
parameter and every lta parameter must be filled, or loading fails naming
the parameter and the file.

Weights are read from `model.safetensors`, a sharded
`model.safetensors.index.json`, or HF's Flax `flax_model.msgpack` (decoded
with msgpack through flax.serialization; pickled `pytorch_model.bin` files
are never opened).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator, Mapping, Optional

from flax import serialization
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from lta.checkpoints import layout
from lta.model.config import T5Config

CONFIG_FILE = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
FLAX_MSGPACK = "flax_model.msgpack"
FLAX_MSGPACK_INDEX = "flax_model.msgpack.index.json"
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")

EMBEDDING = "shared.weight"
EMBEDDING_ALIASES = ("encoder.embed_tokens.weight",
                     "decoder.embed_tokens.weight")
MODEL_TYPES = ("t5", "mt5")

# (stack, sub-layer index, HF module) -> lta sub-module of layers_{i}.
_SUBLAYERS = {
    ("encoder", "0", "SelfAttention"): "attention",
    ("encoder", "1", "DenseReluDense"): "mlp",
    ("decoder", "0", "SelfAttention"): "self_attention",
    ("decoder", "1", "EncDecAttention"): "encoder_decoder_attention",
    ("decoder", "2", "DenseReluDense"): "mlp",
}
_NORMS = {
    ("encoder", "0"): "pre_attention_layer_norm",
    ("encoder", "1"): "pre_mlp_layer_norm",
    ("decoder", "0"): "pre_self_attention_layer_norm",
    ("decoder", "1"): "pre_cross_attention_layer_norm",
    ("decoder", "2"): "pre_mlp_layer_norm",
}
PROJECTIONS = {"q": "query", "k": "key", "v": "value", "o": "out",
                "wi": "wi", "wi_0": "wi_0", "wi_1": "wi_1", "wo": "wo"}
# Parameters outside the blocks: HF name -> (lta path, transpose).
_TOP_LEVEL = {
    EMBEDDING: ("token_embedder/embedding", False),
    "encoder.final_layer_norm.weight": ("encoder/encoder_norm/scale", False),
    "decoder.final_layer_norm.weight": ("decoder/decoder_norm/scale", False),
    "lm_head.weight": ("decoder/logits_dense/kernel", True),
    # HF keeps the bucket table in block 0 only, as (buckets, heads).
    "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight":
        ("encoder/relpos_bias/rel_embedding", True),
    "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight":
        ("decoder/relpos_bias/rel_embedding", True),
}
_MODULE_RE = re.compile(r"(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\."
                        r"(SelfAttention|EncDecAttention|DenseReluDense)\."
                        r"(q|k|v|o|wi|wi_0|wi_1|wo)")
_NORM_RE = re.compile(r"(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\."
                      r"layer_norm\.weight")
_KERNEL_RE = re.compile(r"(encoder|decoder)/layers_(\d+)/(\w+)/(\w+)/kernel")


# ---------------------------------------------------------------- names --


def hf_module_to_lta(module: str) -> Optional[str]:
  """'encoder.block.0.layer.0.SelfAttention.q' -> lta kernel path, or None."""
  if module == "lm_head":
    return "decoder/logits_dense/kernel"
  m = _MODULE_RE.fullmatch(module)
  if not m:
    return None
  stack, block, sub, hf_module, proj = m.groups()
  lta_module = _SUBLAYERS.get((stack, sub, hf_module))
  is_attention = hf_module != "DenseReluDense"
  if lta_module is None or is_attention != (proj in "qkvo"):
    return None
  return f"{stack}/layers_{block}/{lta_module}/{PROJECTIONS[proj]}/kernel"


def lta_to_hf_module(kernel_path: str) -> str:
  """Inverse of hf_module_to_lta."""
  if kernel_path == "decoder/logits_dense/kernel":
    return "lm_head"
  m = _KERNEL_RE.fullmatch(kernel_path)
  if m:
    stack, block, lta_module, proj = m.groups()
    for (s, sub, hf_module), name in _SUBLAYERS.items():
      hf_proj = [k for k, v in PROJECTIONS.items() if v == proj]
      if s == stack and name == lta_module and hf_proj:
        return f"{stack}.block.{block}.layer.{sub}.{hf_module}.{hf_proj[0]}"
  raise ValueError(f"lta kernel {kernel_path!r} has no HuggingFace T5 module")


def hf_to_lta_name(name: str) -> Optional[tuple[str, bool]]:
  """HF parameter name -> (lta path, transpose?), or None if it has none."""
  if name in _TOP_LEVEL:
    return _TOP_LEVEL[name]
  if name.endswith(".weight"):
    kernel = hf_module_to_lta(name[:-len(".weight")])
    if kernel is not None:
      return kernel, True
  m = _NORM_RE.fullmatch(name)
  if m and (m.group(1), m.group(3)) in _NORMS:
    stack, block, sub = m.groups()
    return f"{stack}/layers_{block}/{_NORMS[stack, sub]}/scale", False
  return None


def hf_names(config: T5Config) -> dict[str, tuple[str, bool]]:
  """Every HF name of `config`'s model -> (lta path, transpose?)."""
  shapes = layout.param_shapes(config)
  names = {name: entry for name, entry in _TOP_LEVEL.items()
           if entry[0] in shapes}
  mapped = {path for path, _ in names.values()}
  for path in shapes:
    if path.endswith("/kernel") and path not in mapped:
      names[lta_to_hf_module(path) + ".weight"] = (path, True)
  layers = {"encoder": config.num_encoder_layers,
            "decoder": config.num_decoder_layers}
  for (stack, sub), norm in _NORMS.items():
    for i in range(layers[stack]):
      names[f"{stack}.block.{i}.layer.{sub}.layer_norm.weight"] = (
          f"{stack}/layers_{i}/{norm}/scale", False)
  return names


# --------------------------------------------------------------- config --


def config_from_hf(hf: Mapping[str, Any], source: str = CONFIG_FILE,
                   name: Optional[str] = None) -> T5Config:
  """T5Config from a HuggingFace T5/mT5 config.json dict."""
  model_type = hf.get("model_type")
  if model_type not in MODEL_TYPES:
    raise ValueError(f"{source}: model_type={model_type!r}; lta imports "
                     f"{MODEL_TYPES} (T5 v1.0, T5.1.1, mT5)")
  ff = hf.get("feed_forward_proj", "relu")
  if ff not in ("relu", "gated-gelu", "gated-relu"):
    raise ValueError(f"{source}: feed_forward_proj={ff!r} is not supported; "
                     "expected 'gated-gelu' (mT5/T5.1.1) or 'relu' (T5)")
  try:
    num_layers = int(hf["num_layers"])
    fields = dict(
        vocab_size=int(hf["vocab_size"]), d_model=int(hf["d_model"]),
        d_kv=int(hf["d_kv"]), d_ff=int(hf["d_ff"]),
        num_heads=int(hf["num_heads"]), num_encoder_layers=num_layers,
        num_decoder_layers=int(hf.get("num_decoder_layers") or num_layers),
        relative_attention_num_buckets=int(
            hf.get("relative_attention_num_buckets", 32)),
        relative_attention_max_distance=int(
            hf.get("relative_attention_max_distance", 128)),
        dropout_rate=float(hf.get("dropout_rate", 0.1)),
        layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-6)),
        feed_forward_proj=ff,
        # transformers' default is tied when the key is absent.
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        pad_token_id=int(hf.get("pad_token_id", 0)),
        eos_token_id=int(hf.get("eos_token_id", 1)),
        decoder_start_token_id=int(hf.get("decoder_start_token_id", 0)))
  except KeyError as e:
    raise ValueError(f"{source}: missing field {e.args[0]!r}") from e
  except (TypeError, ValueError) as e:
    raise ValueError(f"{source}: {e}") from e
  return T5Config(name=name or hf.get("_name_or_path") or "hf-t5", **fields)


def config_to_hf(config: T5Config) -> dict[str, Any]:
  """A config.json that transformers' T5/MT5 classes load."""
  c = config
  mt5 = "mt5" in c.name.lower()
  return {
      "architectures": ["MT5ForConditionalGeneration" if mt5 else
                        "T5ForConditionalGeneration"],
      "model_type": "mt5" if mt5 else "t5",
      "vocab_size": c.vocab_size, "d_model": c.d_model, "d_kv": c.d_kv,
      "d_ff": c.d_ff, "num_heads": c.num_heads,
      "num_layers": c.num_encoder_layers,
      "num_decoder_layers": c.num_decoder_layers,
      "relative_attention_num_buckets": c.relative_attention_num_buckets,
      "relative_attention_max_distance": c.relative_attention_max_distance,
      "dropout_rate": c.dropout_rate,
      "layer_norm_epsilon": c.layer_norm_epsilon,
      "feed_forward_proj": c.feed_forward_proj,
      "tie_word_embeddings": c.tie_word_embeddings,
      "is_encoder_decoder": True, "initializer_factor": 1.0,
      "pad_token_id": c.pad_token_id, "eos_token_id": c.eos_token_id,
      "decoder_start_token_id": c.decoder_start_token_id,
  }


# -------------------------------------------------------------- readers --


def _read_safetensors(path: str) -> Iterator[tuple[str, np.ndarray, str]]:
  with safe_open(path, framework="np") as f:
    for name in f.keys():
      yield name, f.get_tensor(name), os.path.basename(path)


def _read_index(path: str, reader) -> Iterator[tuple[str, np.ndarray, str]]:
  with open(path) as f:
    weight_map = json.load(f).get("weight_map")
  if not isinstance(weight_map, dict) or not weight_map:
    raise ValueError(f"{path}: no 'weight_map' in the shard index")
  directory = os.path.dirname(path)
  listed = set(weight_map)
  seen = set()
  for shard in sorted(set(weight_map.values())):
    shard_path = os.path.join(directory, shard)
    if not os.path.exists(shard_path):
      raise FileNotFoundError(f"{path} lists shard {shard}, which is missing")
    for name, arr, origin in reader(shard_path):
      seen.add(name)
      yield name, arr, origin
  if listed - seen:
    raise ValueError(f"{path}: index lists {sorted(listed - seen)[:10]} but "
                     "no shard holds them")


def _read_flax_msgpack(path: str) -> Iterator[tuple[str, np.ndarray, str]]:
  """HF Flax names -> torch-style names and layout (kernel (in, out))."""
  with open(path, "rb") as f:
    tree = serialization.msgpack_restore(f.read())
  if set(tree) == {"params"}:
    tree = tree["params"]
  for key, arr in layout.flatten(tree).items():
    parts = key.split("/")
    arr = np.asarray(arr)
    leaf = parts[-1]
    if leaf == "kernel":
      arr = arr.T
    elif leaf not in ("embedding", "weight"):
      raise ValueError(f"{path}: unexpected Flax parameter '{key}'")
    yield ".".join(parts[:-1] + ["weight"]), arr, (
        f"{os.path.basename(path)}:{key}")


def _read_flax_index(path):
  return _read_index(path, _read_flax_msgpack)


def _read_safetensors_index(path):
  return _read_index(path, _read_safetensors)


_READERS = ((SAFETENSORS, _read_safetensors),
            (SAFETENSORS_INDEX, _read_safetensors_index),
            (FLAX_MSGPACK, _read_flax_msgpack),
            (FLAX_MSGPACK_INDEX, _read_flax_index))


def _weights_file(path: str):
  """(directory, weights file, reader) for a checkpoint dir or file."""
  if os.path.isfile(path):
    directory, base = os.path.split(path)
    for suffix, reader in ((".safetensors", _read_safetensors),
                           (".safetensors.index.json",
                            _read_safetensors_index),
                           (".msgpack", _read_flax_msgpack),
                           (".msgpack.index.json", _read_flax_index)):
      if base.endswith(suffix):
        return directory or ".", path, reader
    raise ValueError(f"{path}: not a .safetensors, .msgpack or shard index "
                     "file")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"No HuggingFace checkpoint at {path}")
  for name, reader in _READERS:
    if os.path.exists(os.path.join(path, name)):
      return path, os.path.join(path, name), reader
  pickled = [n for n in _PICKLED if os.path.exists(os.path.join(path, n))]
  if pickled:
    raise ValueError(
        f"{path} holds only {pickled[0]}, a pickle, which lta does not load "
        "(unpickling runs arbitrary code). Convert it to safetensors once, "
        "with transformers: AutoModelForSeq2SeqLM.from_pretrained(path)"
        ".save_pretrained(out_dir, safe_serialization=True); or use the "
        "repository's model.safetensors / flax_model.msgpack.")
  raise FileNotFoundError(
      f"{path}: no {SAFETENSORS}, {SAFETENSORS_INDEX} or {FLAX_MSGPACK}")


# ------------------------------------------------------------- mapping --


def _to_lta(named: Iterator[tuple[str, np.ndarray, str]], config: T5Config,
            source: str) -> dict[str, Any]:
  expected = hf_names(config)
  hf_shapes = {}
  for name, (path, transpose) in expected.items():
    shape = layout.param_shapes(config)[path]
    hf_shapes[name] = shape[::-1] if transpose else shape
  flat, origin, unknown = {}, {}, []
  embeddings = {}
  for name, arr, where in named:
    if name in EMBEDDING_ALIASES or name == EMBEDDING:
      embeddings[name] = (arr, where)
      continue
    if name == "lm_head.weight" and config.tie_word_embeddings:
      embeddings[name] = (arr, where)  # a tied copy some exporters keep
      continue
    if name not in expected:
      unknown.append(f"{name} ({where})")
      continue
    path, transpose = expected[name]
    if path in flat:
      raise ValueError(f"{source}: {name} appears twice ({origin[path]}, "
                       f"{where})")
    if tuple(arr.shape) != hf_shapes[name]:
      raise ValueError(f"{source}: {name} in {where} has shape "
                       f"{tuple(arr.shape)}; expected {hf_shapes[name]} "
                       f"(config: {config.name})")
    arr = np.asarray(arr, np.float32)
    flat[path] = np.ascontiguousarray(arr.T if transpose else arr)
    origin[path] = f"{name} ({where})"
  if unknown:
    raise ValueError(f"{source}: parameter(s) with no lta counterpart in a "
                     f"{config.num_encoder_layers}+{config.num_decoder_layers}"
                     f"-layer {config.feed_forward_proj} model: {unknown[:20]}")
  _fill_embedding(flat, origin, embeddings, config, source)
  missing = sorted(set(expected) - {n for n in expected
                                    if expected[n][0] in flat})
  if missing:
    raise ValueError(f"{source}: missing parameter(s): {missing[:20]}")
  layout.check_complete(flat, config, source, origin)
  return layout.unflatten(flat)


def _fill_embedding(flat, origin, embeddings, config, source):
  if not embeddings or set(embeddings) == {"lm_head.weight"}:
    raise ValueError(f"{source}: missing parameter {EMBEDDING} (or its "
                     f"aliases {list(EMBEDDING_ALIASES)})")
  first = EMBEDDING if EMBEDDING in embeddings else sorted(
      n for n in embeddings if n != "lm_head.weight")[0]
  arr, where = embeddings[first]
  shape = (config.vocab_size, config.d_model)
  if tuple(arr.shape) != shape:
    raise ValueError(f"{source}: {first} in {where} has shape "
                     f"{tuple(arr.shape)}; expected {shape}")
  for other, (copy, other_where) in embeddings.items():
    if other != first and (copy.shape != arr.shape or
                           not np.array_equal(copy, arr)):
      raise ValueError(f"{source}: {other} ({other_where}) differs from "
                       f"{first}; lta ties them")
  flat["token_embedder/embedding"] = np.asarray(arr, np.float32)
  origin["token_embedder/embedding"] = f"{first} ({where})"


def load_hf_checkpoint(path: str) -> tuple[T5Config, dict[str, Any]]:
  """(T5Config, params) from a HF T5/mT5 directory (or one weights file).

  params is the nested dict of float32 numpy arrays named as in
  docs/internals.md.
  """
  directory, weights, reader = _weights_file(path)
  config_path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{weights} has no {CONFIG_FILE} beside it")
  with open(config_path) as f:
    hf_config = json.load(f)
  name = hf_config.get("_name_or_path") or os.path.basename(
      os.path.abspath(directory))
  config = config_from_hf(hf_config, config_path, name=name)
  return config, _to_lta(reader(weights), config, weights)


def save_hf_checkpoint(params: Mapping[str, Any], config: T5Config,
                       path: str) -> None:
  """Writes config.json + model.safetensors that transformers loads."""
  flat = {k: np.asarray(v) for k, v in layout.flatten(params).items()}
  layout.check_complete(flat, config, "params to export")
  tensors = {}
  for name, (lta_path, transpose) in hf_names(config).items():
    arr = flat[lta_path].astype(np.float32)
    tensors[name] = np.ascontiguousarray(arr.T if transpose else arr)
  os.makedirs(path, exist_ok=True)
  save_file(tensors, os.path.join(path, SAFETENSORS),
            metadata={"format": "pt"})
  with open(os.path.join(path, CONFIG_FILE), "w") as f:
    json.dump(config_to_hf(config), f, indent=2, sort_keys=True)
