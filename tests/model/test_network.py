import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.models import contract as models
from lta.models import layers
from lta.models.mt5.network import Transformer
from tests.model import hlo
from tests.model.tiny import TINY


def _tokens(seed, shape, vocab=TINY.vocab_size):
  return jnp.asarray(np.random.RandomState(seed).randint(2, vocab, shape))


@pytest.fixture(scope="module")
def model_and_vars():
  model = models.EncoderDecoderModel(Transformer(TINY))
  return model, jax.jit(model.init_unboxed)(jax.random.key(0))


def _forward(model):
  return jax.jit(model.module.apply, static_argnames=("enable_dropout",))


def test_relative_position_bucket_matches_reference_formula():
  rel = np.arange(-40, 41)
  for bidirectional in (True, False):
    got = np.asarray(layers.relative_position_bucket(
        jnp.asarray(rel), bidirectional, 32, 128))
    nb, ret = (16, (rel > 0) * 16) if bidirectional else (32, 0 * rel)
    n = np.abs(rel) if bidirectional else -np.minimum(rel, 0)
    max_exact = nb // 2
    large = max_exact + (np.log(np.maximum(n, 1) / max_exact) /
                         np.log(128 / max_exact) *
                         (nb - max_exact)).astype(np.int64)
    want = ret + np.where(n < max_exact, n, np.minimum(large, nb - 1))
    np.testing.assert_array_equal(got, want)


def test_parameter_shapes_follow_the_documented_names(model_and_vars):
  _, v = model_and_vars
  p = v["params"]
  assert p["token_embedder"]["embedding"].shape == (64, 32)
  att = p["encoder"]["layers_0"]["attention"]
  assert att["query"]["kernel"].shape == (32, 24)  # d_model x heads*d_kv
  assert att["out"]["kernel"].shape == (24, 32)
  assert p["decoder"]["relpos_bias"]["rel_embedding"].shape == (3, 8)
  assert p["decoder"]["logits_dense"]["kernel"].shape == (32, 64)
  assert set(p["decoder"]["layers_2"]) == {
      "pre_self_attention_layer_norm", "self_attention",
      "pre_cross_attention_layer_norm", "encoder_decoder_attention",
      "pre_mlp_layer_norm", "mlp"}


def test_every_parameter_has_logical_axis_names():
  model = models.EncoderDecoderModel(Transformer(TINY))
  boxed = model.init_variables(jax.random.key(0))
  leaves = jax.tree_util.tree_leaves(
      boxed["params"], is_leaf=lambda x: hasattr(x, "names"))
  assert leaves and all(hasattr(x, "names") for x in leaves)
  assert all(len(x.names) == x.value.ndim for x in leaves)


def test_cached_decoding_matches_full_forward(model_and_vars):
  model, v = model_and_vars
  enc = _tokens(1, (2, 20)).at[1, 15:].set(0)  # padding in one row
  batch = {"encoder_input_tokens": enc}
  ids = jax.jit(model.predict_batch, static_argnames="config")(
      v, batch, config=models.DecodingConfig(max_decode_length=6))
  # Re-derive greedily with full (uncached) forward passes; the decoder is
  # causal, so the zeros after position i do not change logits at i.
  forward = _forward(model)
  dec = np.zeros((2, 7), np.int32)
  for i in range(6):
    logits = forward(v, enc, jnp.asarray(dec))
    dec[:, i + 1] = np.argmax(np.asarray(logits[:, i]), -1)
  want = dec[:, 1:]
  for row in want:  # zero after the first EOS, as the decoder does
    hit = np.where(row == TINY.eos_token_id)[0]
    if hit.size:
      row[hit[0] + 1:] = 0
  np.testing.assert_array_equal(np.asarray(ids), want)


def test_a_cached_decoding_step_copies_no_cache(model_and_vars):
  # The caches are head-major, the layout the attention dots read: the
  # decoding loop's body must not transpose them (a copy of the whole cross
  # cache each step made greedy decoding 1.2x slower, BENCHMARKS.md).
  model, v = model_and_vars
  enc_len = 40
  batch = {"encoder_input_tokens": _tokens(3, (2, enc_len))}
  compiled = jax.jit(model.predict_batch, static_argnames="config").lower(
      v, batch, config=models.DecodingConfig(max_decode_length=5)
  ).compile().as_text()
  cross_cache = 2 * enc_len * TINY.num_heads * TINY.d_kv
  assert not hlo.loop_body_copies(compiled, cross_cache)


def test_beam_search_with_one_beam_equals_greedy(model_and_vars):
  model, v = model_and_vars
  batch = {"encoder_input_tokens": _tokens(2, (3, 14))}
  predict = jax.jit(model.predict_batch, static_argnames="config")
  greedy = predict(v, batch, config=models.DecodingConfig(max_decode_length=7))
  beam = predict(v, batch, config=models.DecodingConfig(
      method="beam", beam_size=1, max_decode_length=7))
  np.testing.assert_array_equal(np.asarray(greedy), np.asarray(beam))


def test_padding_does_not_change_unpadded_positions(model_and_vars):
  model, v = model_and_vars
  enc = _tokens(3, (1, 10))
  padded = jnp.concatenate([enc, jnp.zeros((1, 6), jnp.int32)], axis=1)
  dec = _tokens(4, (1, 5)).at[:, 0].set(0)
  forward = _forward(model)
  a = forward(v, enc, dec)
  b = forward(v, padded, dec)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_loss_is_finite_and_weighted(model_and_vars):
  model, v = model_and_vars
  tgt = _tokens(5, (2, 6)).at[0, 4:].set(0)
  batch = {"encoder_input_tokens": _tokens(6, (2, 9)),
           "decoder_input_tokens": jnp.pad(tgt[:, :-1], ((0, 0), (1, 0))),
           "decoder_target_tokens": tgt}
  loss, aux = jax.jit(model.loss_fn)(v, batch, None)
  assert np.isfinite(float(loss))
  assert float(aux["num_tokens"]) == 10.0
  # Mean target log-likelihood agrees with score_batch (z-loss aside).
  scores = jax.jit(model.score_batch)(v, batch)
  np.testing.assert_allclose(float(aux["cross_entropy"]),
                             -float(scores.sum()) / 10.0, rtol=1e-5)


def test_dropout_changes_outputs_only_when_enabled():
  model = models.EncoderDecoderModel(Transformer(TINY.replace(
      dropout_rate=0.5)))
  v = jax.jit(model.init_unboxed)(jax.random.key(0))
  enc, dec = _tokens(7, (1, 8)), _tokens(8, (1, 4))
  forward = _forward(model)
  det1 = forward(v, enc, dec)
  det2 = forward(v, enc, dec)
  drop = forward(v, enc, dec, enable_dropout=True,
                 rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(np.asarray(det1), np.asarray(det2))
  assert not np.allclose(np.asarray(det1), np.asarray(drop))


def test_tied_embeddings_have_no_separate_head():
  cfg = TINY.replace(tie_word_embeddings=True, feed_forward_proj="relu")
  model = models.EncoderDecoderModel(Transformer(cfg))
  v = model.init_unboxed(jax.random.key(0))
  assert "logits_dense" not in v["params"]["decoder"]
  assert "wi" in v["params"]["encoder"]["layers_0"]["mlp"]
