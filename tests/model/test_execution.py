"""The faster step computes what the plain one does (ExecutionConfig).

Chunked loss and remat: the same loss and gradients as the plain step, of
every base and adapter leaf, through lta.train.steps.token_sums (the
function train_step differentiates). Low-bit dropout: the keep rate within
binomial tolerance, and masks independent across positions.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lta import errors
from lta import partitioning
from lta.adapters import trainable as trainable_lib
from lta.eval import compilations
from lta.models import dropout as layers
from lta.models.contract import EncoderDecoderModel
from lta.models.execution import ExecutionConfig
from lta.models.mt5.network import Transformer
from lta.train import steps
from tests.model.tiny import TINY
from tests.trainer import states
from tests.trainer.fixture_task import CONFIG

LORA = states.LORA
# One layer each: every claim holds per layer, and compiles stay short.
SMALL = TINY.replace(num_encoder_layers=1, num_decoder_layers=1)
BATCH = states.make_batch(seed=1, batch=2, inputs=8, targets=6,
                   vocab=TINY.vocab_size)


@pytest.fixture(scope="module")
def variables():
  model = EncoderDecoderModel(Transformer(SMALL, LORA))
  v = jax.jit(model.init_unboxed)(jax.random.key(0))
  # LoRA's B starts at zero; move it so every adapter leaf has a gradient.
  v["adapters"] = jax.tree.map(lambda x: x + 0.05, v["adapters"])
  return v


def _loss_and_grads(variables, execution, config=SMALL, dropout_rng=None):
  """(loss sums, grads of every leaf) of the step's differentiated function."""
  model = EncoderDecoderModel(Transformer(config, LORA, execution))
  trainable, frozen = trainable_lib.split_trainable(variables, ".*")
  grad_fn = jax.jit(jax.grad(steps.token_sums, has_aux=True),
                    static_argnums=(4,))
  grads, sums = grad_fn(trainable, frozen, BATCH, dropout_rng, model)
  return sums, grads


def _assert_same(got, want, rtol=1e-5):
  """Equal sums; gradients equal up to float32 reassociation, i.e. within
  rtol of each element or of the leaf's largest element."""
  (sums, grads), (want_sums, want_grads) = got, want
  for k in want_sums:
    np.testing.assert_allclose(sums[k], want_sums[k], rtol=rtol, err_msg=k)
  flat, want_flat = (jax.tree_util.tree_leaves_with_path(g)
                     for g in (grads, want_grads))
  assert len(flat) == len(want_flat)
  for (path, g), (_, w) in zip(flat, want_flat):
    assert g.dtype == jnp.float32, path
    np.testing.assert_allclose(g, w, rtol=rtol,
                               atol=rtol * float(np.abs(w).max()),
                               err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def plain(variables):
  return _loss_and_grads(variables, ExecutionConfig())


def test_chunked_loss_equals_the_full_logits_loss(variables, plain):
  # 6 target positions in chunks of 2: three chunks, some fully padded rows.
  got = _loss_and_grads(variables, ExecutionConfig(loss_chunk_length=2))
  _assert_same(got, plain)


def test_remat_and_chunks_with_dropout_equal_the_plain_step(variables, plain):
  # Remat against no remat (with the chunked loss, equal on its own above),
  # dropout on: remat recomputes the same masks, and the chunked loss keeps
  # the plain path's key below the output layer, so results stay equal.
  config = SMALL.replace(dropout_rate=0.3)
  rng = jax.random.key(7)
  want = _loss_and_grads(variables, ExecutionConfig(), config, rng)
  got = _loss_and_grads(
      variables, ExecutionConfig(remat_policy="full", loss_chunk_length=3),
      config, rng)
  _assert_same(got, want)
  assert abs(float(got[0]["loss"] - plain[0]["loss"])) > 1e-3  # dropout ran


def test_xla_dropout_masks_are_recomputed_the_same_under_remat(variables,
                                                                plain):
  config = SMALL.replace(dropout_rate=0.3)
  rng = jax.random.key(7)
  fast = ExecutionConfig(dropout_mask_bits=8, dropout_rng="xla")
  want = _loss_and_grads(variables, fast, config, rng)
  got = _loss_and_grads(
      variables, dataclasses.replace(fast, remat_policy="full",
                                     loss_chunk_length=3), config, rng)
  _assert_same(got, want)
  assert abs(float(got[0]["loss"] - plain[0]["loss"])) > 1e-3  # dropout ran


def test_the_tiers_quick_compiles_give_the_optimised_programs_results(
    variables):
  """The tests compile without LLVM optimisation (tests/conftest.py); users'
  runs compile with it. Same loss and gradients (dropout on: its masks too)."""
  assert jax.config.read("jax_disable_most_optimizations")
  config = SMALL.replace(dropout_rate=0.3)
  rng = jax.random.key(7)
  quick = _loss_and_grads(variables, ExecutionConfig(), config, rng)
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    with compilations.counting() as compiled:
      optimised = _loss_and_grads(variables, ExecutionConfig(), config, rng)
  finally:
    jax.config.update("jax_disable_most_optimizations", True)
  # A program of its own (compiled, or loaded from the persistent cache).
  assert compiled.of("token_sums") or compiled.persistent_cache_hits
  _assert_same(quick, optimised)


def test_bf16_compute_keeps_float32_master_gradients(variables, plain):
  got = _loss_and_grads(variables, ExecutionConfig(),
                        SMALL.replace(dtype="bfloat16"))
  # bf16 has an 8-bit mantissa: agreement to about 1e-2 relative.
  np.testing.assert_allclose(got[0]["loss"], plain[0]["loss"], rtol=2e-2)
  for g in jax.tree.leaves(got[1]):
    assert g.dtype == jnp.float32


@pytest.mark.parametrize("bits,source", [(8, "jax"), (16, "jax"),
                                         (8, "xla"), (16, "xla"),
                                         (32, "xla")])
def test_low_bit_dropout_keep_rate_and_independence(bits, source):
  rate, shape = 0.1, (256, 1000)
  threshold = layers.dropout_keep_threshold(rate, bits)
  p = threshold / 2**bits
  assert abs(p - (1 - rate)) <= 2.0**-(bits + 1)
  mask = jax.jit(layers.low_bit_keep_mask, static_argnums=(1, 2, 3, 4))
  keep = np.asarray(mask(jax.random.key(bits), shape, rate, bits, source))
  # Another key draws another mask; the same key the same one.
  again = np.asarray(mask(jax.random.key(bits), shape, rate, bits, source))
  other = np.asarray(mask(jax.random.key(bits + 1), shape, rate, bits,
                          source))
  np.testing.assert_array_equal(keep, again)
  assert abs((keep != other).mean() - 2 * p * (1 - p)) < 0.01
  n = keep.size
  sigma = np.sqrt(p * (1 - p) / n)
  assert abs(keep.mean() - p) < 5 * sigma
  # Neighbours share a 32-bit word (4 per word at 8 bits, 2 at 16): pairs at
  # offsets 1..4 along the last axis and across rows are kept together with
  # probability p^2.
  for a, b in [(keep[:, :-d], keep[:, d:]) for d in (1, 2, 3, 4)] + [
      (keep[:-1], keep[1:])]:
    both = (a & b).mean()
    assert abs(both - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / a.size)
  # Every row keeps about p of its positions (no row-level correlation).
  rows = keep.mean(1)
  assert abs(rows.std() - np.sqrt(p * (1 - p) / shape[1])) < 0.2 * (
      np.sqrt(p * (1 - p) / shape[1]))


def test_low_bit_dropout_module_is_unbiased_like_flax_dropout():
  x = jnp.ones((64, 500))
  rng = {"dropout": jax.random.key(3)}
  low = layers.LowBitDropout(0.1, 8).apply({}, x, False, rngs=rng)
  xla = layers.LowBitDropout(0.1, 8, "xla").apply({}, x, False, rngs=rng)
  ref = layers.dropout(0.1).apply({}, x, False, rngs=rng)
  threshold = layers.dropout_keep_threshold(0.1, 8)
  for out in (low, xla):
    np.testing.assert_array_equal(np.unique(out),
                                  np.float32([0.0, 256 / threshold]))
  assert (np.asarray(low) != np.asarray(xla)).any()  # another generator
  sigma = np.sqrt(0.1 / 0.9 / x.size)  # std of the mean of scaled masks
  for out in (low, xla, ref):
    assert abs(float(out.mean()) - 1.0) < 5 * sigma
  np.testing.assert_array_equal(
      layers.LowBitDropout(0.1, 8).apply({}, x, True), x)


def test_bad_execution_options_are_named():
  with pytest.raises(errors.ConfigError, match="did you mean 'dots'"):
    ExecutionConfig(remat_policy="dot")
  with pytest.raises(errors.ConfigError, match="dropout_mask_bits=4"):
    ExecutionConfig(dropout_mask_bits=4)
  with pytest.raises(errors.ConfigError, match="dropout_rng='xl'.*did you "
                     "mean 'xla'"):
    ExecutionConfig(dropout_rng="xl")
  model = EncoderDecoderModel(Transformer(
      SMALL, None, ExecutionConfig(loss_chunk_length=4)))
  v = jax.eval_shape(model.init_unboxed, jax.random.key(0))
  with pytest.raises(errors.ConfigError, match="loss_chunk_length=4 does not "
                     "divide the target length 6"):
    jax.eval_shape(model.loss_fn, v, BATCH, None)


def _one_step_on_one_device_and_a_mesh(execution):
  """(loss, trainable) after one LoRA step, dropout on, on one device and
  on a data4 x model2 mesh."""
  model = EncoderDecoderModel(Transformer(
      CONFIG.replace(dropout_rate=0.1), states.LORA, execution))
  batch = states.make_batch(seed=0)
  optimizer = optax.sgd(0.5)
  results = []
  for mesh in (partitioning.make_mesh(partitioning.MeshConfig(1, 1),
                                      devices=jax.devices()[:1]),
               partitioning.make_mesh(partitioning.MeshConfig(4, 2))):
    rules = partitioning.LOGICAL_AXIS_RULES
    var_sh, state_sh = steps.state_shardings(model, "adapters", optimizer,
                                             mesh, rules)
    with partitioning.activated(mesh, rules):
      state = steps.create_state(
          steps.init_variables(model, var_sh, seed=0), "adapters", optimizer,
          var_sh, state_sh, seed=0)
      step = steps.jit_train_step(model, optimizer, state_sh, mesh)
      state, metrics = step(state,
                            partitioning.host_batch_to_global(batch, mesh))
    results.append((float(metrics["loss"]),
                    jax.device_get(state.trainable)))
  return results


def _assert_same_step(results):
  (loss1, tree1), (loss8, tree8) = results
  np.testing.assert_allclose(loss1, loss8, rtol=2e-5)
  for a, b in zip(jax.tree.leaves(tree1), jax.tree.leaves(tree8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fast_step_on_a_sharded_mesh_matches_one_device():
  # 8-bit dropout masks, chunked loss and remat, dropout on: a data4 x model2
  # mesh draws the masks the single device draws (partitionable threefry)
  # and takes the same step.
  _assert_same_step(_one_step_on_one_device_and_a_mesh(ExecutionConfig(
      dropout_mask_bits=8, loss_chunk_length=3, remat_policy="dots")))


def test_xla_dropout_bits_on_a_sharded_mesh():
  # XLA does not partition its RngBitGenerator: every device of the mesh
  # draws each mask whole and keeps its shard (the cost ExecutionConfig's
  # docstring names), so the mesh takes the single device's step. If a
  # later XLA splits the generator, this fails: revisit that docstring.
  results = _one_step_on_one_device_and_a_mesh(
      ExecutionConfig(dropout_mask_bits=8, dropout_rng="xla"))
  _assert_same_step(results)
  assert np.isfinite(results[0][0])
