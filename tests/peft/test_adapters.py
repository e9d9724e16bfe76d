import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.models import contract as models
from lta.models.mt5.network import Transformer
from lta.adapters import deltas
from lta.adapters import trainable
from lta.models.layers import Projection
from lta.adapters.config import MLP_TARGETS, AdapterConfig
from tests.model.tiny import TINY

LORA = AdapterConfig(kind="lora", rank=2, alpha=4.0)
KRONA = AdapterConfig(kind="krona", kron_factors=(8, 4), alpha=2.0, rank=1)
LOKR = AdapterConfig(kind="krona", kron_factors=(8, 4), kron_b_rank=2,
                     alpha=2.0, rank=2)


def _randomise(tree, seed):
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  new = [0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
  return jax.tree_util.tree_unflatten(treedef, new)


def _inputs():
  rs = np.random.RandomState(0)
  enc = jnp.asarray(rs.randint(2, 64, (2, 16))).at[1, 12:].set(0)
  dec = jnp.asarray(rs.randint(2, 64, (2, 6))).at[:, 0].set(0)
  return enc, dec


def _model(adapter):
  m = models.EncoderDecoderModel(Transformer(TINY, adapter))
  return m, m.init_unboxed(jax.random.key(0))


@pytest.mark.parametrize("cfg", [LORA, KRONA, LOKR], ids=["lora", "krona",
                                                          "lokr"])
def test_adapted_model_equals_base_at_init(cfg):
  model, v = _model(cfg)
  enc, dec = _inputs()
  base = model.module.apply({"params": v["params"]}, enc, dec)
  adapted = model.module.apply(v, enc, dec)
  np.testing.assert_array_equal(np.asarray(base), np.asarray(adapted))


@pytest.mark.parametrize("cfg", [LORA, KRONA, LOKR], ids=["lora", "krona",
                                                          "lokr"])
def test_unmerged_equals_merged_and_unmerge_restores(cfg):
  model, v = _model(cfg)
  adapters = _randomise(v["adapters"], 1)
  enc, dec = _inputs()
  unmerged = model.module.apply({"params": v["params"], "adapters": adapters},
                                enc, dec)
  merged_params = deltas.merge_into_base(v["params"], adapters, cfg)
  merged = model.module.apply({"params": merged_params}, enc, dec)
  base = model.module.apply({"params": v["params"]}, enc, dec)
  assert not np.allclose(np.asarray(unmerged), np.asarray(base), atol=1e-3)
  np.testing.assert_allclose(np.asarray(merged), np.asarray(unmerged),
                             atol=1e-4, rtol=1e-4)
  restored = deltas.unmerge_from_base(merged_params, adapters, cfg)
  for a, b in zip(jax.tree_util.tree_leaves(restored),
                  jax.tree_util.tree_leaves(v["params"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_kronecker_delta_equals_numpy_kron_placed_and_scaled():
  model, v = _model(KRONA)
  adapters = _randomise(v["adapters"], 2)
  leaves = adapters["encoder"]["layers_0"]["attention"]["query"]
  a, b = np.asarray(leaves["kron_a"]), np.asarray(leaves["kron_b"])
  assert a.shape == (8, 4) and b.shape == (32 // 8, 24 // 4)
  want = KRONA.scale * np.kron(a, b)
  # The layer's unmerged output for x is x @ dW: probe it with the identity.
  # A free-standing Projection has an empty path; match any path for it.
  kernel = np.zeros((32, 24), np.float32)
  x = jnp.eye(32)
  proj = Projection(24, ("embed", "joined_kv"),
                    adapter=AdapterConfig(kind="krona", kron_factors=(8, 4),
                                          alpha=2.0, rank=1, targets=".*"))
  got = proj.apply({"params": {"kernel": kernel}, "adapters": leaves}, x)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)
  np.testing.assert_allclose(
      deltas.adapter_deltas(adapters, KRONA)[
          "encoder/layers_0/attention/query/kernel"], want, atol=1e-6)


def test_lora_default_targets_are_attention_qkvo_everywhere():
  _, v = _model(AdapterConfig())
  paths = set(deltas.adapter_modules(v["adapters"]))
  assert len(paths) == 4 * (2 + 2 * 3)
  assert "decoder/layers_2/encoder_decoder_attention/out" in paths
  assert not any("mlp" in p for p in paths)
  _, v = _model(AdapterConfig(targets=MLP_TARGETS))
  assert all("/mlp/" in p for p in deltas.adapter_modules(v["adapters"]))


def test_lora_b_starts_at_zero_and_scale_options():
  _, v = _model(LORA)
  q = v["adapters"]["decoder"]["layers_0"]["self_attention"]["query"]
  assert np.all(np.asarray(q["lora_b"]) == 0)
  assert np.any(np.asarray(q["lora_a"]) != 0)
  assert AdapterConfig(rank=4, alpha=8).scale == 2.0
  assert AdapterConfig(rank=4, alpha=8, rslora=True).scale == 4.0


def test_indivisible_kronecker_shape_is_a_clear_error():
  with pytest.raises(ValueError, match=r"\(m, n\)=\(5, 3\).*must divide 32"):
    _model(AdapterConfig(kind="krona", kron_factors=(5, 3)))


def test_regex_matching_nothing_is_an_error():
  with pytest.raises(ValueError, match="matches no kernel"):
    _model(AdapterConfig(targets=r"encoder/.*/nothing/kernel"))
  _, v = _model(LORA)
  with pytest.raises(ValueError, match="matches no variable"):
    trainable.split_trainable(v, r"adapters/.*/nothing")


def test_rank_larger_than_dimension_is_an_error():
  with pytest.raises(ValueError, match="rank 40 .* exceeds min"):
    _model(AdapterConfig(rank=40))


def test_trainable_split_presets_and_share():
  _, v = _model(LORA)
  train, frozen = trainable.split_trainable(v, "adapters")
  assert set(train) == {"adapters"} and set(frozen) == {"params"}
  assert trainable.combine(train, frozen).keys() == v.keys()
  train, _ = trainable.split_trainable(v, "frozen_decoder")
  assert set(train["params"]) == {"encoder"}
  summary = trainable.trainable_summary(v["adapters"], v["params"])
  assert 0 < summary["share_percent"] < 100


def test_mt5_small_lora_share_is_small():
  from lta.models.mt5.config import T5Config
  model = models.EncoderDecoderModel(Transformer(T5Config(), AdapterConfig()))
  shapes = jax.eval_shape(lambda: model.init_unboxed(jax.random.key(0)))
  summary = trainable.trainable_summary(shapes["adapters"], shapes["params"])
  # 4 projections x 24 attention blocks x r(512 + 384). mT5-small has
  # 300,176,768 parameters (as HF counts them); its embeddings are 85% of it,
  # so the share is below the paper's 0.2% for PaLM 2.
  assert summary["base"] == 300_176_768
  assert summary["trainable"] == 24 * 4 * 4 * (512 + 384)
  assert 0.1 < summary["share_percent"] < 0.2


@pytest.mark.parametrize("cfg", [LORA, KRONA], ids=["lora", "krona"])
def test_merged_and_unmerged_decoding_give_identical_tokens(cfg):
  model, v = _model(cfg)
  adapters = _randomise(v["adapters"], 3)
  enc, _ = _inputs()
  predict = jax.jit(model.predict_batch, static_argnames="config")
  config = models.DecodingConfig(max_decode_length=8)
  unmerged = predict({"params": v["params"], "adapters": adapters},
                     {"encoder_input_tokens": enc}, config=config)
  merged = predict({"params": deltas.merge_into_base(v["params"], adapters,
                                                    cfg)},
                   {"encoder_input_tokens": enc}, config=config)
  base = predict({"params": v["params"]}, {"encoder_input_tokens": enc},
                 config=config)
  np.testing.assert_array_equal(np.asarray(merged), np.asarray(unmerged))
  assert not np.array_equal(np.asarray(base), np.asarray(unmerged))
