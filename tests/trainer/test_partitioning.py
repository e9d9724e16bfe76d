"""Sharded training on 8 fake CPU devices equals training on one device."""

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from lta import errors
from lta import partitioning
from lta.train import steps
from tests.trainer import states


def _train_on_mesh(mesh, model, batches, pattern, optimizer,
                   rules=partitioning.LOGICAL_AXIS_RULES):
  var_sh, state_sh = steps.state_shardings(model, pattern, optimizer, mesh,
                                           rules)
  with partitioning.activated(mesh, rules):
    variables = steps.init_variables(model, var_sh, seed=0)
    state = steps.create_state(variables, pattern, optimizer, var_sh,
                               state_sh, seed=0)
    step = steps.jit_train_step(model, optimizer, state_sh, mesh)
    losses = []
    for batch in batches:
      state, metrics = step(state,
                            partitioning.host_batch_to_global(batch, mesh))
      losses.append(float(metrics["loss"]))
  return state, losses


# Full fine-tuning uses SGD: Adam's first steps are ~lr * sign(g), which
# turns float32 rounding of near-zero gradients (rare embedding rows) into
# lr-sized differences that say nothing about sharding.
@pytest.mark.parametrize("pattern,optimizer", [
    ("adapters", optax.adamw(1e-2)), ("full", optax.sgd(0.5))])
def test_data4_model2_mesh_matches_one_device(pattern, optimizer):
  assert jax.device_count() == 8
  model = states.make_model(adapter=states.LORA if pattern == "adapters"
                            else None)
  batches = [states.make_batch(seed=i) for i in range(3)]
  one = partitioning.make_mesh(partitioning.MeshConfig(data=1, model=1),
                               devices=jax.devices()[:1])
  many = partitioning.make_mesh(partitioning.MeshConfig(data=4, model=2))
  assert dict(many.shape) == {"data": 4, "model": 2}

  state1, losses1 = _train_on_mesh(one, model, batches, pattern, optimizer)
  state8, losses8 = _train_on_mesh(many, model, batches, pattern, optimizer)

  # The model really is split: heads' projections over 'model'.
  params = state8.variables["params"]
  query = params["encoder"]["layers_0"]["attention"]["query"]["kernel"]
  assert query.sharding.spec == P(None, "model")
  assert len(query.addressable_shards) == 8
  assert query.addressable_shards[0].data.shape == (32, 16)

  # Sharded reductions sum in another order: equal up to float32 rounding.
  np.testing.assert_allclose(losses1, losses8, rtol=2e-5)
  for a, b in zip(jax.tree.leaves(jax.device_get(state1.trainable)),
                  jax.tree.leaves(jax.device_get(state8.trainable))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_logical_rules_cover_every_axis_name():
  from lta.models import layers  # pylint: disable=g-import-not-at-top
  names = {getattr(layers, n) for n in (
      "BATCH", "LENGTH", "EMBED", "JOINED_KV", "MLP", "VOCAB", "HEADS",
      "KV_LENGTH", "RELPOS_BUCKETS", "ADAPTER_RANK", "KRON_OUTER_IN",
      "KRON_OUTER_OUT", "KV_HEADS", "HEAD_DIM")}
  assert names == {name for name, _ in partitioning.LOGICAL_AXIS_RULES}


def test_undivisible_axis_is_replicated():
  """mT5-small's 6 heads on a 4-way model axis: replicate, don't fail."""
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=2, model=4))
  model = states.make_model(config=states.CONFIG.replace(num_heads=6, d_kv=4))
  boxed = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  sh = partitioning.logical_to_sharding(boxed, mesh)
  layer = sh["params"]["encoder"]["layers_0"]
  assert layer["attention"]["query"]["kernel"].spec == P(None, "model")  # 24
  assert sh["params"]["encoder"]["relpos_bias"]["rel_embedding"].spec == P(
      None, None)  # 6 heads
  assert layer["mlp"]["wi_0"]["kernel"].spec == P(None, "model")


@pytest.mark.parametrize("data,model", [(3, 2), (-1, -1), (0, 8)])
def test_bad_mesh_shapes_are_rejected(data, model):
  with pytest.raises(ValueError, match="MeshConfig"):
    partitioning.make_mesh(partitioning.MeshConfig(data=data, model=model))


def test_global_batch_must_split_over_data_axis():
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=4, model=2))
  with pytest.raises(ValueError, match="Global batch size 6"):
    partitioning.check_batch_size(6, mesh)
  assert partitioning.check_batch_size(8, mesh) == 8  # one host


def test_a_bad_process_count_in_the_environment_is_named(monkeypatch):
  monkeypatch.setenv(partitioning.ENV_NUM_PROCESSES, "two")
  with pytest.raises(errors.ConfigError, match="LTA_NUM_PROCESSES='two'"):
    partitioning.initialize_distributed()
  assert not jax.distributed.is_initialized()
