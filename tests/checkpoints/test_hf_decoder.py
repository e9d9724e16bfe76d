"""HF decoder-only checkpoints <-> lta (lta.checkpoints.hf_decoder).

Import then export is exact and writes what transformers wrote (tensor
names, shapes, config values), sharded or not; unknown architectures and
missing or unknown tensor names are one-line CheckpointErrors naming them.
"""

import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lta import errors
from lta.adapters.tree import flatten_tree
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.checkpoints import hf_decoder
from lta.errors import CheckpointError
from lta.models.mt5.config import T5Config
from tests.model import decoder_fixtures as fx

# Keys of transformers' config.json that lta does not write: they do not
# change the computation.
_NOT_EXPORTED = {"attention_dropout", "initializer_range", "use_cache",
                 "transformers_version", "pretraining_tp",
                 "_sliding_window_pattern", "use_bidirectional_attention",
                 "max_window_layers", "use_sliding_window"}
# transformers leaves out a field equal to its class default.
_CLASS_DEFAULTS = {"gemma2": {"tie_word_embeddings": True},
                   "gemma3": {"tie_word_embeddings": True}}


def _tensors(directory):
  index = os.path.join(directory, "model.safetensors.index.json")
  if not os.path.exists(index):
    return load_file(os.path.join(directory, "model.safetensors"))
  with open(index) as f:
    files = set(json.load(f)["weight_map"].values())
  out = {}
  for name in files:
    out.update(load_file(os.path.join(directory, name)))
  return out


def _config(directory):
  with open(os.path.join(directory, "config.json")) as f:
    return json.load(f)


def _assert_same_params(a, b):
  a, b = flatten_tree(a), flatten_tree(b)
  assert sorted(a) == sorted(b)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("family", fx.FAMILIES)
def test_export_writes_what_transformers_wrote_and_reimports_exactly(
    family, tmp_path):
  config, params = fx.load(family)
  hf_decoder.save_hf_decoder(params, config, str(tmp_path))
  want, got = _tensors(fx.checkpoint(family)), _tensors(str(tmp_path))
  assert {k: v.shape for k, v in got.items()} == {
      k: v.shape for k, v in want.items()}
  for name in want:
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
  theirs, ours = _config(fx.checkpoint(family)), _config(str(tmp_path))
  theirs = {**_CLASS_DEFAULTS.get(family, {}), **theirs}
  assert {k: theirs.get(k) for k in ours} == ours
  assert {k for k in set(theirs) - set(ours)
          if theirs[k] is not None} <= _NOT_EXPORTED
  config2, params2 = hf_decoder.load_hf_decoder(str(tmp_path))
  assert config2.architecture_dict() == config.architecture_dict()
  _assert_same_params(params2, params)


def test_sharded_checkpoints_import_and_export(tmp_path):
  config, params = fx.load("llama")
  sharded_config, sharded = hf_decoder.load_hf_decoder(fx.LLAMA_SHARDED)
  assert sharded_config.architecture_dict() == config.architecture_dict()
  _assert_same_params(sharded, params)
  hf_decoder.save_hf_decoder(params, config, str(tmp_path),
                             max_shard_bytes=40_000)
  shards = [f for f in os.listdir(tmp_path) if f.startswith("model-")]
  assert len(shards) > 1
  assert os.path.exists(tmp_path / "model.safetensors.index.json")
  _assert_same_params(hf_decoder.load_hf_decoder(str(tmp_path))[1], params)


def _copy(family, tmp_path):
  path = tmp_path / family
  shutil.copytree(fx.checkpoint(family), path)
  return path


def test_unknown_architecture_is_named_with_a_hint(tmp_path):
  path = _copy("llama", tmp_path)
  config = _config(path)
  config["architectures"] = ["LlamaForCausalLm"]
  (path / "config.json").write_text(json.dumps(config))
  with pytest.raises(CheckpointError,
                     match=r"'LlamaForCausalLm'.*did you mean.*"
                           r"LlamaForCausalLM") as e:
    hf_decoder.load_hf_decoder(str(path))
  assert "config.json" in str(e.value) and "\n" not in str(e.value)
  config["architectures"], config["model_type"] = ["MistralForCausalLM"], (
      "mistral")
  (path / "config.json").write_text(json.dumps(config))
  with pytest.raises(CheckpointError, match="'MistralForCausalLM' is not"):
    hf_decoder.load_hf_decoder(str(path))
  config["architectures"] = ["Gemma3ForConditionalGeneration"]
  config["model_type"] = "gemma3"
  (path / "config.json").write_text(json.dumps(config))
  with pytest.raises(CheckpointError, match="save it as Gemma3ForCausalLM"):
    base_model.load_base_model(str(path), None, "flag")


def test_missing_and_unknown_tensor_names_are_named(tmp_path):
  path = _copy("qwen2", tmp_path)
  weights = str(path / "model.safetensors")
  tensors = load_file(weights)
  del tensors["model.layers.1.self_attn.k_proj.bias"]
  save_file(tensors, weights)
  with pytest.raises(CheckpointError,
                     match=r"model.safetensors: missing tensor "
                           r"model.layers.1.self_attn.k_proj.bias of the "
                           r"qwen2 model"):
    hf_decoder.load_hf_decoder(str(path))
  tensors["model.layers.1.self_attn.k_proj.bais"] = np.zeros(16, np.float32)
  save_file(tensors, weights)
  with pytest.raises(CheckpointError,
                     match=r"tensor model.layers.1.self_attn.k_proj.bais has "
                           r"no counterpart.*did you mean.*k_proj.bias"):
    hf_decoder.load_hf_decoder(str(path))


def test_base_model_loading_takes_a_decoder_only_hf_base(tmp_path):
  config, params = fx.load("gemma3")
  path = fx.checkpoint("gemma3")
  got_config, got = base_model.load_base_model(path, None, "flag")
  assert got_config == config
  _assert_same_params(got, params)
  assert base_model.load_base_model(path, config.replace(name="gin"),
                                    "flag")[0].name == "gin"
  with pytest.raises(errors.ConfigError,
                     match=r"INITIAL_CHECKPOINT_PATH='.*gemma3_tiny' does not "
                           r"match .*sliding_window=\(8, 4\)"):
    base_model.load_base_model(path, config.replace(sliding_window=8),
                               "INITIAL_CHECKPOINT_PATH")
  with pytest.raises(errors.ConfigError,
                     match="holds a DecoderConfig model, but the model config "
                           "is a T5Config"):
    base_model.load_base_model(path, T5Config(), "flag")
  # Adapters record the base's fingerprint: it tells the families apart.
  fingerprints = {fingerprint.base_model_fingerprint(*fx.load(family))
                  for family in fx.FAMILIES}
  assert len(fingerprints) == len(fx.FAMILIES)
  assert fingerprint.base_model_fingerprint(got_config, got) == (
      fingerprint.base_model_fingerprint(config, params))
