"""A frozen base sharded FSDP-style over (data=2, model=2) trains as on one
device: same losses, same adapter, and the base's kernels span both axes."""

import pathlib

import gin
import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from lta import errors
from lta import partitioning
from lta.adapters.tree import flatten_tree
from lta.models import families
from lta.models.decoder.config import DecoderConfig
from tests.trainer import states
from tests.trainer.test_partitioning import _train_on_mesh

DECODER = DecoderConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                        num_layers=1, num_heads=2, num_kv_heads=1,
                        head_dim=8, tie_word_embeddings=False, bos_token_id=2)
FSDP_GIN = (pathlib.Path(__file__).resolve().parents[2] / "gin" / "mesh" /
            "fsdp.gin")


def _decoder_batch(seed, batch=4, length=8):
  rng = np.random.default_rng(seed)
  tgt = rng.integers(3, DECODER.vocab_size, (batch, length), dtype=np.int32)
  for i in range(batch):
    tgt[i, rng.integers(3, length):] = 0
  return {"decoder_target_tokens": tgt,
          "decoder_input_tokens": np.concatenate(
              [np.full((batch, 1), 2, np.int32), tgt[:, :-1]], 1),
          "decoder_loss_weights": (tgt > 0).astype(np.int32)}


def _meshes():
  one = partitioning.make_mesh(partitioning.MeshConfig(data=1, model=1),
                               devices=jax.devices()[:1])
  fsdp = partitioning.MeshConfig(data=2, model=2, rules="fsdp")
  return one, partitioning.make_mesh(fsdp, devices=jax.devices()[:4]), fsdp


# The decoder-only case is slow-tier (the default tier keeps mT5's).
@pytest.mark.parametrize(
    "family", ["mt5", pytest.param("decoder", marks=pytest.mark.slow)])
def test_fsdp_base_on_data2_model2_trains_as_one_device(family):
  if family == "mt5":
    model = states.make_model(config=states.CONFIG.replace(
        num_encoder_layers=1, num_decoder_layers=1))
    batches = [states.make_batch(seed=i, batch=4) for i in range(3)]
    layer = ("encoder", "layers_0")
  else:
    model = families.build_model(DECODER, states.LORA)
    batches = [_decoder_batch(seed=i) for i in range(3)]
    layer = ("decoder", "layers_0")
  one, many, fsdp = _meshes()
  optimizer = optax.adamw(1e-2)
  state1, losses1 = _train_on_mesh(one, model, batches, "adapters",
                                   optimizer)
  state4, losses4 = _train_on_mesh(many, model, batches, "adapters",
                                   optimizer, fsdp.rules)

  # The frozen base really is split over both axes: 'embed' over 'data',
  # the heads' dimension over 'model', a quarter of the kernel per device.
  params = state4.variables["params"]
  query = params[layer[0]][layer[1]]["attention"]["query"]["kernel"]
  assert query.sharding.spec == P("data", "model")
  assert {s.data.shape for s in query.addressable_shards} == {
      (query.shape[0] // 2, query.shape[1] // 2)}
  # The adapter and its Adam moments follow the same rules.
  adapter = flatten_tree(state4.trainable)
  mu = flatten_tree(state4.opt_state[0].mu)
  lora_a = next(k for k in adapter if k.endswith("query/lora_a"))
  assert adapter[lora_a].sharding.spec == P("data", None)
  assert mu[lora_a].sharding.spec == P("data", None)

  np.testing.assert_allclose(losses1, losses4, rtol=2e-5)
  for a, b in zip(jax.tree.leaves(jax.device_get(state1.trainable)),
                  jax.tree.leaves(jax.device_get(state4.trainable))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_activations_keep_batch_on_data_under_fsdp():
  """'batch' outranks 'embed' for 'data': an activation is split by rows
  only, a weight by its embed dimension."""
  rules = partitioning.FSDP_AXIS_RULES
  assert partitioning.AXIS_RULE_SETS["fsdp"] is rules
  from flax import linen as nn  # pylint: disable=g-import-not-at-top
  assert nn.logical_to_mesh_axes(("batch", "length", "embed"), rules) == P(
      "data", None, None)
  assert nn.logical_to_mesh_axes(("embed", "mlp"), rules) == P(
      "data", "model")
  assert nn.logical_to_mesh_axes(("vocab", "embed"), rules) == P(
      "model", "data")


@pytest.mark.usefixtures("clean_gin")
def test_fsdp_gin_file_chooses_the_fsdp_rules():
  gin.parse_config_file(str(FSDP_GIN))
  assert partitioning.MeshConfig().rules == partitioning.FSDP_AXIS_RULES
  assert partitioning.MeshConfig(rules="tensor_parallel").rules == (
      partitioning.LOGICAL_AXIS_RULES)


def test_an_unknown_rule_set_is_named_with_a_hint():
  with pytest.raises(errors.ConfigError,
                     match=r"MeshConfig.rules='fdsp'.*did you mean 'fsdp'"):
    partitioning.MeshConfig(rules="fdsp")
