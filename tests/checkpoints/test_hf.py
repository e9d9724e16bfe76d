import json
import os
import shutil

import gin
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lta.eval import scoring as evaluation
from lta.models import contract as models
from lta.checkpoints import hf
from lta.checkpoints import layout
from lta.models.mt5.network import Transformer
from lta.adapters.tree import flatten_tree
from tests.checkpoints import hf_fixtures as fx

TOL = 1e-4
EOS_ID = 1


def test_config_maps_every_field(mt5):
  config, params = mt5
  assert (config.d_model, config.d_kv, config.num_heads, config.d_ff) == (
      32, 8, 3, 48)
  assert (config.num_encoder_layers, config.num_decoder_layers) == (2, 3)
  assert (config.relative_attention_num_buckets,
          config.relative_attention_max_distance) == (8, 12)
  assert config.feed_forward_proj == "gated-gelu"
  assert not config.tie_word_embeddings
  assert params["encoder"]["layers_0"]["attention"]["query"]["kernel"].shape \
      == (32, 24)
  assert params["encoder"]["relpos_bias"]["rel_embedding"].shape == (3, 8)
  assert all(v.dtype == np.float32 for v in flatten_tree(params).values())


@pytest.mark.parametrize("name,path", [("mt5_tiny", fx.MT5),
                                       ("t5v1_tiny", fx.T5V1)])
def test_logits_and_encoder_output_match_transformers(name, path):
  config, params = hf.load_hf_checkpoint(path)
  ref = fx.reference(name)
  enc, dec = ref["encoder_input_ids"], ref["decoder_input_ids"]
  assert enc.shape[1] > config.relative_attention_max_distance
  assert (enc == 0).any()  # padding is exercised
  np.testing.assert_allclose(fx.lta_logits(config, params, enc, dec),
                             ref["logits"], atol=TOL, rtol=0)
  np.testing.assert_allclose(fx.lta_encode(config, params, enc),
                             ref["encoder_last_hidden_state"], atol=TOL,
                             rtol=0)


def test_t5v1_config_is_tied_relu():
  config, params = hf.load_hf_checkpoint(fx.T5V1)
  assert config.tie_word_embeddings and config.feed_forward_proj == "relu"
  assert "logits_dense" not in params["decoder"]
  assert set(params["encoder"]["layers_0"]["mlp"]) == {"wi", "wo"}


GENERATION = [("mt5_gen_tiny", fx.MT5_GEN), ("t5v1_gen_tiny", fx.T5V1_GEN)]
PADDINGS = ("right", "left")


def _decode_like_lta_eval(path, ref, decoding):
  """predict_batch, jitted as `lta eval` jits it, on both paddings."""
  assert decoding.max_decode_length == ref["max_new_tokens"]
  config, params = hf.load_hf_checkpoint(path)
  model = models.EncoderDecoderModel(Transformer(config))
  predict = evaluation.make_predict_fn(model, decoding)
  return {padding: np.asarray(predict(
      {"params": params},
      {"encoder_input_tokens": ref[f"encoder_input_ids_{padding}"]}))
          for padding in PADDINGS}


@pytest.mark.parametrize("name,path", GENERATION)
def test_cached_greedy_decoding_matches_generate(name, path):
  ref = fx.reference(name)
  got = _decode_like_lta_eval(path, ref, models.DecodingConfig(
      max_decode_length=int(ref["max_new_tokens"])))
  for padding in PADDINGS:
    enc = ref[f"encoder_input_ids_{padding}"]
    first_or_last = {"right": -1, "left": 0}[padding]
    assert (enc[:, first_or_last] == 0).any()  # rows of different lengths
    # generate's rows: the start token, then ids up to the longest row.
    hf_ids = ref[f"greedy_generate_{padding}"][:, 1:]
    np.testing.assert_array_equal(got[padding][:, :hf_ids.shape[1]], hf_ids,
                                  err_msg=f"{name}, {padding} padding")
    assert np.all(got[padding][:, hf_ids.shape[1]:] == 0)
  # The reference exercises EOS: some rows end mid-sequence and then pad,
  # some run to the limit; and no row repeats one id.
  ids = got["right"]
  ended = np.array([EOS_ID in row[:-1] for row in ids])
  assert ended.any() and not ended.all(), ids
  for row in ids:
    body = row[:list(row).index(EOS_ID)] if EOS_ID in row else row
    assert np.all(row[len(body) + 1:] == 0) and len(set(body)) >= 3, row


@pytest.mark.parametrize("name,path", GENERATION)
def test_cached_beam_search_matches_generate(name, path):
  # generate: num_beams=4, length_penalty=0. lta: alpha=0 and its default
  # rule, which finishes at the limit as generate does. generate's other
  # difference (only the best num_beams of a step's 2*num_beams candidates
  # may finish) picks nothing else here: the fixture script checks it.
  ref = fx.reference(name)
  got = _decode_like_lta_eval(path, ref, models.DecodingConfig(
      method="beam", beam_size=int(ref["num_beams"]), alpha=0.0,
      max_decode_length=int(ref["max_new_tokens"])))
  for padding in PADDINGS:
    np.testing.assert_array_equal(got[padding], ref[f"beam_ids_{padding}"],
                                  err_msg=f"{name}, {padding} padding")
  assert not np.array_equal(got["right"], ref["greedy_ids_right"])
  assert any(EOS_ID in row[:-1] for row in got["right"])


def test_t5x_finishing_rule_bound_by_gin():
  # Expected: the rows T5X's rule picks from the same search, which the
  # fixture script derived from generate's own log-probs.
  ref = fx.reference("mt5_gen_tiny")
  try:
    with gin.unlock_config():
      gin.parse_config(f"""
          DecodingConfig.method = 'beam'
          DecodingConfig.beam_size = {int(ref["num_beams"])}
          DecodingConfig.alpha = 0.0
          DecodingConfig.finish_at_max_length = False
          DecodingConfig.max_decode_length = {int(ref["max_new_tokens"])}
      """)
    decoding = models.DecodingConfig()
  finally:
    gin.clear_config()
  assert decoding.finish_at_max_length is False
  got = _decode_like_lta_eval(fx.MT5_GEN, ref, decoding)
  for padding in PADDINGS:
    np.testing.assert_array_equal(got[padding],
                                  ref[f"beam_t5x_ids_{padding}"],
                                  err_msg=f"{padding} padding")
  # Of the rows whose default winner was cut off at the limit, one ends with
  # EOS now, and one keeps it because none of its hypotheses ended.
  cut_off = [EOS_ID not in row for row in ref["beam_ids_right"]]
  t5x_rows, default_rows = got["right"][cut_off], ref["beam_ids_right"][cut_off]
  assert any(EOS_ID in row for row in t5x_rows)
  assert any(np.array_equal(a, b) for a, b in zip(t5x_rows, default_rows))


def test_sharded_equals_single_file(mt5):
  _, params = mt5
  _, sharded = hf.load_hf_checkpoint(fx.MT5_SHARDED)
  assert len([f for f in os.listdir(fx.MT5_SHARDED)
              if f.endswith(".safetensors")]) > 1
  fx.assert_same_params(params, sharded)


def test_flax_msgpack_equals_safetensors(mt5):
  _, params = mt5
  _, from_msgpack = hf.load_hf_checkpoint(
      os.path.join(fx.MT5, hf.FLAX_MSGPACK))
  fx.assert_same_params(params, from_msgpack)


def test_directory_prefers_safetensors_and_falls_back_to_msgpack(tmp_path,
                                                                  mt5):
  d = tmp_path / "flax_only"
  d.mkdir()
  for f in ("config.json", hf.FLAX_MSGPACK):
    shutil.copy(os.path.join(fx.MT5, f), d / f)
  _, params = hf.load_hf_checkpoint(str(d))
  fx.assert_same_params(mt5[1], params)


def test_pytorch_bin_only_is_refused(tmp_path):
  shutil.copy(os.path.join(fx.MT5, "config.json"), tmp_path / "config.json")
  (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
  with pytest.raises(ValueError, match=r"pytorch_model\.bin.*safetensors"):
    hf.load_hf_checkpoint(str(tmp_path))


def _rewrite(tmp_path, change):
  """A copy of the mT5 fixture whose tensors went through `change`."""
  tmp_path.mkdir(exist_ok=True)
  shutil.copy(os.path.join(fx.MT5, "config.json"), tmp_path / "config.json")
  tensors = load_file(os.path.join(fx.MT5, hf.SAFETENSORS))
  change(tensors)
  save_file(tensors, str(tmp_path / hf.SAFETENSORS), metadata={"format": "pt"})
  return str(tmp_path)


def test_unknown_name_is_named(tmp_path):
  extra = "encoder.block.2.layer.0.SelfAttention.q.weight"
  path = _rewrite(tmp_path, lambda t: t.update(
      {extra: np.zeros((24, 32), np.float32)}))
  with pytest.raises(ValueError, match=extra.replace(".", r"\.")):
    hf.load_hf_checkpoint(path)


def test_missing_name_is_named(tmp_path):
  gone = "decoder.block.1.layer.1.EncDecAttention.k.weight"
  path = _rewrite(tmp_path, lambda t: t.pop(gone))
  with pytest.raises(ValueError, match=gone.replace(".", r"\.")):
    hf.load_hf_checkpoint(path)


def test_wrong_shape_names_parameter_expected_and_found(tmp_path):
  name = "encoder.block.1.layer.0.SelfAttention.q.weight"
  path = _rewrite(tmp_path, lambda t: t.update(
      {name: np.zeros((32, 32), np.float32)}))
  with pytest.raises(ValueError) as e:
    hf.load_hf_checkpoint(path)
  msg = str(e.value)
  assert name in msg and "(32, 32)" in msg and "(24, 32)" in msg
  assert hf.SAFETENSORS in msg


def test_embedding_aliases(tmp_path, mt5):
  def only_aliases(t):
    shared = t.pop("shared.weight")
    t["encoder.embed_tokens.weight"] = shared
    t["decoder.embed_tokens.weight"] = shared.copy()
  _, params = hf.load_hf_checkpoint(_rewrite(tmp_path / "a", only_aliases))
  fx.assert_same_params(mt5[1], params)

  def different(t):
    t["decoder.embed_tokens.weight"] = t["shared.weight"] + 1.0
  with pytest.raises(ValueError, match="decoder.embed_tokens.weight"):
    hf.load_hf_checkpoint(_rewrite(tmp_path / "b", different))


@pytest.mark.parametrize("field,value", [("model_type", "umt5"),
                                         ("feed_forward_proj", "gated-silu")])
def test_unsupported_config_is_named(tmp_path, field, value):
  with open(os.path.join(fx.MT5, "config.json")) as f:
    cfg = json.load(f)
  cfg[field] = value
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  shutil.copy(os.path.join(fx.MT5, hf.SAFETENSORS), tmp_path / hf.SAFETENSORS)
  with pytest.raises(ValueError, match=field):
    hf.load_hf_checkpoint(str(tmp_path))


@pytest.mark.parametrize("path", [fx.MT5, fx.T5V1])
def test_save_then_load_round_trips(tmp_path, path):
  config, params = hf.load_hf_checkpoint(path)
  hf.save_hf_checkpoint(params, config, str(tmp_path))
  config2, params2 = hf.load_hf_checkpoint(str(tmp_path))
  assert config2.architecture_dict() == config.architecture_dict()
  fx.assert_same_params(params, params2)
  # Same names and layout as transformers' own save_pretrained.
  ours = load_file(str(tmp_path / hf.SAFETENSORS))
  theirs = load_file(os.path.join(path, hf.SAFETENSORS))
  assert {k: v.shape for k, v in ours.items()} == {
      k: v.shape for k, v in theirs.items()}
  for k in theirs:
    np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)


def test_module_names_map_both_ways(mt5):
  config, _ = mt5
  kernels = [p for p in layout.param_shapes(config) if p.endswith("/kernel")]
  for kernel in kernels:
    assert hf.hf_module_to_lta(hf.lta_to_hf_module(kernel)) == kernel
  assert hf.hf_module_to_lta("encoder.block.0.layer.0.SelfAttention.q") == (
      "encoder/layers_0/attention/query/kernel")
  assert hf.hf_module_to_lta("decoder.block.2.layer.1.EncDecAttention.o") == (
      "decoder/layers_2/encoder_decoder_attention/out/kernel")
  assert hf.hf_module_to_lta("encoder.block.0.layer.1.EncDecAttention.q") is None
