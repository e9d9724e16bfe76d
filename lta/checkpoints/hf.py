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
import msgpack
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from lta.checkpoints import layout
from lta.errors import CheckpointError, MissingFileError
from lta.models.mt5.config import T5Config
from lta.adapters.config import FLOAT_DTYPES, message_of
from lta.adapters.tree import flatten_tree, unflatten_tree

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


def _int(hf: Mapping[str, Any], key: str, source: str,
         default: Any = None) -> int:
  value = hf.get(key, default)
  if value is None and default is None:
    raise CheckpointError(f"{source}: missing field {key!r}")
  if not isinstance(value, int) or isinstance(value, bool):
    raise CheckpointError(f"{source}: {key}={value!r}; expected an integer")
  return value


def _number(hf: Mapping[str, Any], key: str, source: str,
            default: float) -> float:
  value = hf.get(key, default)
  if not isinstance(value, (int, float)) or isinstance(value, bool):
    raise CheckpointError(f"{source}: {key}={value!r}; expected a number")
  return float(value)


def config_from_hf(hf: Mapping[str, Any], source: str = CONFIG_FILE,
                   name: Optional[str] = None) -> T5Config:
  """T5Config from a HuggingFace T5/mT5 config.json dict."""
  if not isinstance(hf, Mapping):
    raise CheckpointError(f"{source}: expected a JSON object, got "
                          f"{type(hf).__name__}")
  model_type = hf.get("model_type")
  if model_type not in MODEL_TYPES:
    raise CheckpointError(f"{source}: model_type={model_type!r}; lta imports "
                          f"{MODEL_TYPES} (T5 v1.0, T5.1.1, mT5)")
  ff = hf.get("feed_forward_proj", "relu")
  if ff not in ("relu", "gated-gelu", "gated-relu"):
    raise CheckpointError(
        f"{source}: feed_forward_proj={ff!r} is not supported; expected "
        "'gated-gelu' (mT5/T5.1.1) or 'relu' (T5)")
  tied = hf.get("tie_word_embeddings", True)
  if not isinstance(tied, bool):
    raise CheckpointError(f"{source}: tie_word_embeddings={tied!r}; expected "
                          "true or false")
  num_layers = _int(hf, "num_layers", source)
  fields = dict(
      vocab_size=_int(hf, "vocab_size", source),
      d_model=_int(hf, "d_model", source), d_kv=_int(hf, "d_kv", source),
      d_ff=_int(hf, "d_ff", source), num_heads=_int(hf, "num_heads", source),
      num_encoder_layers=num_layers,
      num_decoder_layers=(_int(hf, "num_decoder_layers", source)
                          if hf.get("num_decoder_layers") is not None
                          else num_layers),
      relative_attention_num_buckets=_int(
          hf, "relative_attention_num_buckets", source, 32),
      relative_attention_max_distance=_int(
          hf, "relative_attention_max_distance", source, 128),
      dropout_rate=_number(hf, "dropout_rate", source, 0.1),
      layer_norm_epsilon=_number(hf, "layer_norm_epsilon", source, 1e-6),
      feed_forward_proj=ff,
      # transformers' default is tied when the key is absent.
      tie_word_embeddings=tied,
      pad_token_id=_int(hf, "pad_token_id", source, 0),
      eos_token_id=_int(hf, "eos_token_id", source, 1),
      decoder_start_token_id=_int(hf, "decoder_start_token_id", source, 0))
  name = name or hf.get("_name_or_path") or "hf-t5"
  try:
    return T5Config(name=str(name), **fields)
  except ValueError as e:
    raise CheckpointError(f"{source}: {message_of(e)}") from e


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


def _check_tensor(name: str, arr: np.ndarray, where: str) -> np.ndarray:
  """Refuses a tensor that is not floating point or holds NaN / Inf."""
  if arr.dtype.name not in FLOAT_DTYPES:
    raise CheckpointError(f"{where}: tensor {name} has dtype {arr.dtype}; "
                          f"weights are one of {list(FLOAT_DTYPES)}")
  if not np.all(np.isfinite(arr)):
    raise CheckpointError(
        f"{where}: tensor {name} holds non-finite values "
        f"({int(np.isnan(arr).sum())} NaN, {int(np.isinf(arr).sum())} Inf)")
  return arr


def iter_safetensors(path: str) -> Iterator[tuple[str, np.ndarray]]:
  """(name, array) of every tensor of a safetensors file, each checked.

  A file safetensors cannot parse, a non-float dtype (e.g. a header edited
  from F32 to I32) or a NaN / Inf is a CheckpointError naming the file.

  The file is mapped for one tensor at a time: the pages read stay in the
  process's resident memory while it is mapped, so a file kept open while
  every tensor is copied out doubles the peak memory of a load.
  """
  try:
    with safe_open(path, framework="np") as f:
      names = list(f.keys())
    for name in names:
      with safe_open(path, framework="np") as f:
        tensor = f.get_tensor(name)
      yield name, _check_tensor(name, tensor, path)
  except (SafetensorError, OSError, ValueError, TypeError) as e:
    if isinstance(e, CheckpointError):
      raise
    reason = " ".join(str(e).split())
    raise CheckpointError(f"{path}: not a readable safetensors file "
                          f"({reason})") from e


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  return dict(iter_safetensors(path))


def _read_safetensors(path: str) -> Iterator[tuple[str, np.ndarray, str]]:
  for name, arr in iter_safetensors(path):
    yield name, arr, path


def read_json(path: str) -> Any:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: not a readable JSON file ({e})") from e


def _read_index(path: str, reader) -> Iterator[tuple[str, np.ndarray, str]]:
  index = read_json(path)
  weight_map = index.get("weight_map") if isinstance(index, dict) else None
  if not isinstance(weight_map, dict) or not weight_map:
    raise CheckpointError(f"{path}: no 'weight_map' object in the shard "
                          "index")
  for name, shard in weight_map.items():
    if (not isinstance(shard, str) or os.path.basename(shard) != shard or
        shard in ("", ".", "..")):
      raise CheckpointError(f"{path}: weight_map[{name!r}]={shard!r} is not "
                            "a file name in the checkpoint directory")
  directory = os.path.dirname(path)
  for shard in sorted(set(weight_map.values())):
    shard_path = os.path.join(directory, shard)
    if not os.path.isfile(shard_path):
      raise MissingFileError(f"{path} lists shard {shard_path}, which is "
                             "missing")
    seen = set()
    for name, arr, origin in reader(shard_path):
      if weight_map.get(name) != shard:
        raise CheckpointError(
            f"{shard_path} holds {name}, which {path} puts in "
            f"{weight_map.get(name)!r}")
      seen.add(name)
      yield name, arr, origin
    listed = {n for n, s in weight_map.items() if s == shard}
    if listed - seen:
      raise CheckpointError(f"{shard_path} lacks {sorted(listed - seen)[:10]}"
                            f", which {path} puts in it")


def _read_flax_msgpack(path: str) -> Iterator[tuple[str, np.ndarray, str]]:
  """HF Flax names -> torch-style names and layout (kernel (in, out))."""
  try:
    with open(path, "rb") as f:
      tree = serialization.msgpack_restore(f.read())
  except (OSError, ValueError, TypeError, KeyError, IndexError,
          msgpack.UnpackException) as e:
    raise CheckpointError(f"{path}: not a readable Flax msgpack file "
                          f"({type(e).__name__}: {e})") from e
  if not isinstance(tree, dict):
    raise CheckpointError(f"{path}: expected a tree of parameters, got "
                          f"{type(tree).__name__}")
  if set(tree) == {"params"}:
    tree = tree["params"]
  for key, arr in flatten_tree(tree).items():
    parts = key.split("/")
    if not isinstance(arr, np.ndarray):
      raise CheckpointError(f"{path}: parameter '{key}' is a "
                            f"{type(arr).__name__}, not an array")
    leaf = parts[-1]
    _check_tensor(key, arr, path)
    if leaf == "kernel":
      arr = arr.T
    elif leaf not in ("embedding", "weight"):
      raise CheckpointError(f"{path}: unexpected Flax parameter '{key}'")
    yield ".".join(parts[:-1] + ["weight"]), arr, f"{path}:{key}"


def _read_flax_index(path):
  return _read_index(path, _read_flax_msgpack)


def _read_safetensors_index(path):
  return _read_index(path, _read_safetensors)


_READERS = ((SAFETENSORS, _read_safetensors),
            (SAFETENSORS_INDEX, _read_safetensors_index),
            (FLAX_MSGPACK, _read_flax_msgpack),
            (FLAX_MSGPACK_INDEX, _read_flax_index))


def weights_file(path: str):
  """(directory, weights file, reader) for a checkpoint dir or file; the
  other families' importers (hf_bart, hf_decoder) read theirs with it too."""
  if os.path.isfile(path):
    directory, base = os.path.split(path)
    for suffix, reader in ((".safetensors", _read_safetensors),
                           (".safetensors.index.json",
                            _read_safetensors_index),
                           (".msgpack", _read_flax_msgpack),
                           (".msgpack.index.json", _read_flax_index)):
      if base.endswith(suffix):
        return directory or ".", path, reader
    raise CheckpointError(f"{path}: not a .safetensors, .msgpack or shard "
                          "index file")
  if not os.path.isdir(path):
    raise MissingFileError(f"No HuggingFace checkpoint at {path}")
  for name, reader in _READERS:
    if os.path.exists(os.path.join(path, name)):
      return path, os.path.join(path, name), reader
  pickled = [n for n in _PICKLED if os.path.exists(os.path.join(path, n))]
  if pickled:
    raise CheckpointError(
        f"{path} holds only {pickled[0]}, a pickle, which lta does not load "
        "(unpickling runs arbitrary code). Convert it to safetensors once, "
        "with transformers: AutoModelForSeq2SeqLM.from_pretrained(path)"
        ".save_pretrained(out_dir, safe_serialization=True); or use the "
        "repository's model.safetensors / flax_model.msgpack.")
  raise MissingFileError(
      f"{path}: no {SAFETENSORS}, {SAFETENSORS_INDEX} or {FLAX_MSGPACK}")


# ------------------------------------------------------------- mapping --


def _to_lta(named: Iterator[tuple[str, np.ndarray, str]], config: T5Config,
            source: str, config_path: str) -> dict[str, Any]:
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
      raise CheckpointError(f"{source}: {name} appears twice "
                            f"({origin[path]}, {where})")
    if tuple(arr.shape) != hf_shapes[name]:
      raise CheckpointError(
          f"{source}: {name} in {where} has shape {tuple(arr.shape)}; "
          f"expected {hf_shapes[name]} (config: {config.name}, "
          f"{config_path})")
    arr = np.asarray(arr, np.float32)
    flat[path] = np.ascontiguousarray(arr.T if transpose else arr)
    origin[path] = f"{name} ({where})"
  if unknown:
    raise CheckpointError(
        f"{source}: parameter(s) with no lta counterpart in the "
        f"{config.num_encoder_layers}+{config.num_decoder_layers}-layer "
        f"{config.feed_forward_proj} model of {config_path}: {unknown[:20]}")
  _fill_embedding(flat, origin, embeddings, config, source, config_path)
  missing = sorted(set(expected) - {n for n in expected
                                    if expected[n][0] in flat})
  if missing:
    raise CheckpointError(f"{source}: missing parameter(s) the model of "
                          f"{config_path} has: {missing[:20]}")
  layout.check_complete(flat, config, source, origin)
  return unflatten_tree(flat)


def _fill_embedding(flat, origin, embeddings, config, source, config_path):
  if not embeddings or set(embeddings) == {"lm_head.weight"}:
    raise CheckpointError(f"{source}: missing parameter {EMBEDDING} (or its "
                          f"aliases {list(EMBEDDING_ALIASES)})")
  first = EMBEDDING if EMBEDDING in embeddings else sorted(
      n for n in embeddings if n != "lm_head.weight")[0]
  arr, where = embeddings[first]
  shape = (config.vocab_size, config.d_model)
  if tuple(arr.shape) != shape:
    raise CheckpointError(f"{source}: {first} in {where} has shape "
                          f"{tuple(arr.shape)}; expected {shape} "
                          f"({config_path})")
  for other, (copy, other_where) in embeddings.items():
    if other != first and (copy.shape != arr.shape or
                           not np.array_equal(copy, arr)):
      raise CheckpointError(
          f"{source}: {other} ({other_where}) differs from {first}; lta "
          f"ties them (tie_word_embeddings in {config_path})")
  flat["token_embedder/embedding"] = np.asarray(arr, np.float32)
  origin["token_embedder/embedding"] = f"{first} ({where})"


def load_hf_checkpoint(path: str) -> tuple[T5Config, dict[str, Any]]:
  """(T5Config, params) from a HF T5/mT5 directory (or one weights file).

  params is the nested dict of float32 numpy arrays named as in
  docs/internals.md. Every refusal is a CheckpointError (or
  MissingFileError) naming the file.
  """
  directory, weights, reader = weights_file(path)
  config_path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise MissingFileError(f"{weights} has no {CONFIG_FILE} beside it")
  hf_config = read_json(config_path)
  if not isinstance(hf_config, dict):
    raise CheckpointError(f"{config_path}: expected a JSON object, got "
                          f"{type(hf_config).__name__}")
  name = hf_config.get("_name_or_path") or os.path.basename(
      os.path.abspath(directory))
  config = config_from_hf(hf_config, config_path, name=str(name))
  return config, _to_lta(reader(weights), config, weights, config_path)


def save_hf_checkpoint(params: Mapping[str, Any], config: T5Config,
                       path: str) -> None:
  """Writes config.json + model.safetensors that transformers loads."""
  flat = {k: np.asarray(v) for k, v in flatten_tree(params).items()}
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
