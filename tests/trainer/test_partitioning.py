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


def test_a_base_goes_to_the_devices_leaf_by_leaf_and_is_not_copied():
  """init_variables with a numpy base: the params are the base's, sharded,
  the base dict is emptied as its leaves are placed, and the adapters are
  those of a run without a base; create_state then keeps them, uncopied."""
  model = states.make_model()
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=4, model=2))
  var_sh, state_sh = steps.state_shardings(model, "adapters",
                                           optax.adamw(1e-2), mesh,
                                           partitioning.LOGICAL_AXIS_RULES)
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(model.init_unboxed, jax.random.PRNGKey(0))
  base = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                      shapes["params"])
  want = jax.tree.map(np.copy, base)
  held = jax.tree.leaves(base)  # kept alive: their memory is not reused
  host = [(x.__array_interface__["data"][0], x.nbytes) for x in held]
  with partitioning.activated(mesh, partitioning.LOGICAL_AXIS_RULES):
    plain = steps.init_variables(model, var_sh, seed=0)
    variables = steps.init_variables(model, var_sh, seed=0, base=base)
    assert base == {}
    # Every placed leaf has memory of its own (a train step can donate it).
    for leaf in jax.tree.leaves(variables["params"]):
      for shard in leaf.addressable_shards:
        ptr = shard.data.unsafe_buffer_pointer()
        assert not any(start <= ptr < start + n for start, n in host)
    for got, ref, sharding in zip(
        jax.tree.leaves(variables["params"]), jax.tree.leaves(want),
        jax.tree.leaves(var_sh["params"])):
      np.testing.assert_array_equal(np.asarray(got), ref)
      assert got.sharding == sharding
    for got, ref in zip(jax.tree.leaves(variables["adapters"]),
                        jax.tree.leaves(plain["adapters"])):
      np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
    state = steps.create_state(variables, "adapters", optax.adamw(1e-2),
                               var_sh, state_sh, seed=0)
  # The state holds the placed base itself: no copy of the model was made.
  for placed, held in zip(jax.tree.leaves(variables["params"]),
                          jax.tree.leaves(state.frozen["params"])):
    assert ([s.data.unsafe_buffer_pointer() for s in placed.addressable_shards]
            == [s.data.unsafe_buffer_pointer()
                for s in held.addressable_shards])


def test_a_base_of_other_shapes_is_refused():
  model = states.make_model()
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=8, model=1))
  var_sh, _ = steps.state_shardings(model, "adapters", optax.adamw(1e-2),
                                    mesh, partitioning.LOGICAL_AXIS_RULES)
  shapes = jax.eval_shape(model.init_unboxed, jax.random.PRNGKey(0))
  base = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes["params"])
  base["token_embedder"]["embedding"] = np.zeros((3, 4), np.float32)
  with pytest.raises(ValueError, match="token_embedder/embedding"):
    steps.init_variables(model, var_sh, seed=0, base=base)


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
