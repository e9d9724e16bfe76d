"""mBART-50 and NLLB-200 (M2M100) against transformers (issue 19).

The fixtures are tiny random models made by tests/fixtures/
make_seq2seq_fixtures.py with transformers 4.57.6: every norm and bias is
random, the batch is right-padded (rows of 12, 9, 6 and 10 tokens) and
generate forces the target-language code as the first token.
"""

import functools
import json
import os
import shutil

import flax.linen as nn
import gin
import jax
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from lta import GIN_DIR
from lta.adapters.config import AdapterConfig
from lta.adapters.tree import flatten_tree
from lta.checkpoints import hf_bart
from lta.errors import CheckpointError, ConfigError
from lta.eval import scoring
from lta.models.bart.config import BartConfig
from lta.models.bart.network import Transformer
from lta.models.contract import DecodingConfig, EncoderDecoderModel
from tests.checkpoints import hf_fixtures as fx

SEQ2SEQ = os.path.join(fx.FIXTURES, "seq2seq")
MODELS = ("mbart", "nllb")
ATOL = 1e-4


def _path(name):
  return os.path.join(SEQ2SEQ, f"{name}_tiny")


def _reference(name):
  ref = dict(np.load(os.path.join(SEQ2SEQ, f"{name}_tiny.reference.npz")))
  with open(os.path.join(SEQ2SEQ, f"{name}_tiny.reference.json")) as f:
    return ref, json.load(f)


@functools.lru_cache(maxsize=None)
def _loaded(name):
  return hf_bart.load_hf_checkpoint(_path(name))


@functools.lru_cache(maxsize=None)
def _forward(config):
  model = Transformer(config)
  return jax.jit(lambda v, e, d: (model.apply(v, e, d),
                                  model.apply(v, e, method="encode")))


@pytest.mark.parametrize("name", MODELS)
def test_logits_match_transformers_on_padded_batch(name):
  config, params = _loaded(name)
  ref, _ = _reference(name)
  mask = ref["attention_mask"].astype(bool)
  assert mask.shape[1] >= 8 and not mask.all(axis=1).all()  # padded rows
  logits, encoded = _forward(config)({"params": params},
                                     ref["input_ids"].astype(np.int32),
                                     ref["decoder_input_ids"].astype(np.int32))
  np.testing.assert_allclose(logits, ref["logits"], atol=ATOL, rtol=0)
  np.testing.assert_allclose(np.asarray(encoded)[mask],
                             ref["encoder_last_hidden_state"][mask],
                             atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_cached_greedy_with_forced_language_matches_generate(name):
  config, params = _loaded(name)
  ref, settings = _reference(name)
  target = settings["language_code_ids"][settings["target_language"]]
  assert settings["generation"]["forced_bos_token_id"] == target
  # generate's rows: the decoder start token, then the new tokens.
  want = ref["generated_ids"][:, 1:]
  decoding = DecodingConfig(max_decode_length=want.shape[1],
                            forced_first_id=target)
  predict = scoring.make_predict_fn(
      EncoderDecoderModel(Transformer(config)), decoding)
  got = np.asarray(predict({"params": params}, {
      "encoder_input_tokens": ref["input_ids"].astype(np.int32)}))
  np.testing.assert_array_equal(got, want)
  # The forced code differs from what the model would pick unforced, and
  # the reference has rows that end with eos then pad, and rows that do not.
  assert np.all(got[:, 0] == target)
  assert np.all(ref["generated_logits"][:, 0].argmax(-1) != target)
  ended = (got == config.eos_token_id).any(axis=1)
  assert ended.any() and not ended.all()
  assert (got == config.pad_token_id).any()


def test_forced_first_token_holds_for_beam_search():
  config, params = _loaded("mbart")
  ref, settings = _reference("mbart")
  target = settings["language_code_ids"][settings["target_language"]]
  model = EncoderDecoderModel(Transformer(config))
  predict = scoring.make_predict_fn(model, DecodingConfig(
      method="beam", beam_size=2, max_decode_length=2,
      forced_first_id=target))
  got = np.asarray(predict({"params": params}, {
      "encoder_input_tokens": ref["input_ids"][:2, :6].astype(np.int32)}))
  assert np.all(got[:, 0] == target), got
  with pytest.raises(ConfigError, match="forced_first_id=160 is not a token"):
    model.predict_batch({"params": params},
                        {"encoder_input_tokens": ref["input_ids"][:1]},
                        DecodingConfig(forced_first_id=config.vocab_size))


@pytest.mark.parametrize("name", MODELS)
def test_export_then_import_round_trips_exactly(tmp_path, name):
  config, params = _loaded(name)
  hf_bart.save_hf_checkpoint(params, config, str(tmp_path))
  again_config, again = hf_bart.load_hf_checkpoint(str(tmp_path))
  assert again_config.replace(name=config.name) == config
  fx.assert_same_params(again, params)
  # Names, shapes and config values are the fixture's (transformers' own).
  exported = load_file(str(tmp_path / "model.safetensors"))
  with safe_open(os.path.join(_path(name), "model.safetensors"), "np") as f:
    fixture = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
  assert {k: v.shape for k, v in exported.items()} == fixture
  with open(tmp_path / "config.json") as f:
    written = json.load(f)
  with open(os.path.join(_path(name), "config.json")) as f:
    original = json.load(f)
  assert {k: original.get(k) for k in written} == written


def _copy_with(tmp_path, name, change_tensors=None, change_config=None):
  """A copy of a fixture whose tensors or config.json went through a change."""
  path = tmp_path / name
  shutil.copytree(_path(name), path)
  if change_tensors:
    tensors = load_file(str(path / "model.safetensors"))
    change_tensors(tensors)
    save_file(tensors, str(path / "model.safetensors"))
  if change_config:
    with open(path / "config.json") as f:
      config = json.load(f)
    change_config(config)
    with open(path / "config.json", "w") as f:
      json.dump(config, f)
  return str(path)


RENAMED = "model.encoder.layers.0.self_attn.q_proj.weight"


@pytest.mark.parametrize("change_tensors,change_config,message", [
    (None, lambda c: c.update(model_type="marian"),
     r"model_type='marian'; lta imports \['m2m_100', 'mbart'\]"),
    (None, lambda c: c.update(model_type="mbart_"),
     r"did you mean 'mbart'"),
    (None, lambda c: c.update(architectures=["MBartForCausalLM"]),
     r"architectures=\['MBartForCausalLM'\]"),
    (None, lambda c: c.update(decoder_ffn_dim=128),
     r"encoder_ffn_dim == decoder_ffn_dim"),
    (None, lambda c: c.update(tie_word_embeddings=False),
     r"tie_word_embeddings=false"),
    (None, lambda c: c.update(activation_function="silu"),
     r"BartConfig.activation='silu'"),
    (lambda t: t.pop(RENAMED), None,
     r"missing tensor\(s\) .*self_attn\.q_proj\.weight"),
    (lambda t: t.update({RENAMED.replace("q_proj", "qq_proj"):
                         t.pop(RENAMED)}), None,
     r"no lta counterpart .*qq_proj\.weight .*did you mean"),
    (lambda t: t.update({RENAMED: t[RENAMED][:, :16]}), None,
     r"q_proj\.weight .* has shape \(32, 16\); expected \(32, 32\)"),
    (lambda t: t.update({"lm_head.weight": t["model.shared.weight"] + 1}),
     None, r"lm_head\.weight .* differs from model\.shared\.weight"),
    (lambda t: t.pop("final_logits_bias"), None,
     r"missing tensor\(s\) .*final_logits_bias"),
])
def test_bad_checkpoints_are_named(tmp_path, change_tensors, change_config,
                                   message):
  path = _copy_with(tmp_path, "mbart", change_tensors, change_config)
  with pytest.raises(CheckpointError, match=message) as error:
    hf_bart.load_hf_checkpoint(path)
  assert "\n" not in str(error.value)


def test_export_refuses_params_of_another_model(tmp_path):
  config, params = _loaded("nllb")
  with pytest.raises(CheckpointError, match="missing .*position_embedding"):
    hf_bart.save_hf_checkpoint(params, config.replace(model_type="mbart"),
                               str(tmp_path))


def test_lora_attaches_to_every_attention_projection_as_on_mt5():
  config, params = _loaded("nllb")
  adapter = AdapterConfig(rank=2)
  model = EncoderDecoderModel(Transformer(config, adapter=adapter))
  adapters = jax.jit(lambda rng: model.init_unboxed(
      rng, encoder_length=4, decoder_length=4)["adapters"])(
          jax.random.PRNGKey(0))
  kernels = {p.rsplit("/", 1)[0] for p in flatten_tree(adapters)}
  per_layer = 4 * (config.num_encoder_layers + 2 * config.num_decoder_layers)
  assert len(kernels) == per_layer
  assert "decoder/layers_1/encoder_decoder_attention/out" in kernels
  # B starts at zero: the adapted network is the base network.
  ref, _ = _reference("nllb")
  enc, dec = ref["input_ids"][:1, :6], ref["decoder_input_ids"][:1, :4]
  base, adapted = jax.jit(lambda p, a: (
      model.module.apply({"params": p}, enc, dec),
      model.module.apply({"params": p, "adapters": a}, enc, dec)))(
          params, adapters)
  np.testing.assert_array_equal(adapted, base)


def test_config_refuses_bad_values():
  with pytest.raises(ConfigError, match=r"model_type='mbart50'.*did you mean"):
    BartConfig(model_type="mbart50")
  with pytest.raises(ConfigError, match="not a multiple of num_heads=3"):
    BartConfig(d_model=32, num_heads=3)


@pytest.mark.usefixtures("clean_gin")
@pytest.mark.parametrize("name", MODELS)
def test_tiny_gin_model_is_the_fixtures_architecture(name):
  gin.parse_config_file(os.path.join(GIN_DIR, "models", f"{name}_tiny.gin"))
  config, _ = _loaded(name)
  assert BartConfig().architecture_dict() == config.architecture_dict()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_has_logical_axis_names(name):
  config, _ = _loaded(name)
  model = EncoderDecoderModel(Transformer(config, AdapterConfig(rank=2)))
  boxed = jax.eval_shape(lambda: model.init_variables(
      jax.random.PRNGKey(0), encoder_length=4, decoder_length=4))
  leaves = jax.tree_util.tree_leaves_with_path(
      boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert len(leaves) > 50
  for path, leaf in leaves:
    assert isinstance(leaf, nn.Partitioned), jax.tree_util.keystr(path)
    assert len(leaf.names) == leaf.value.ndim and all(leaf.names), path
