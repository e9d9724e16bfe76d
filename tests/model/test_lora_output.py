"""lta.models.lora.lora_output: the LoRA path's own gradient equals autodiff's, and a
LoRA model's adapter gradients equal those of its merged kernels."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.adapters import deltas
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.models import lora
from lta.models.contract import EncoderDecoderModel
from lta.models.mt5.network import Transformer
from tests.model.tiny import TINY
from tests.trainer import states


def _plain(x, a, b, scale):
  return ((x @ a) @ b) * scale


def _operands(dtype, shape=(3, 5, 16)):
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.normal(keys[0], shape, dtype)
  a = jax.random.normal(keys[1], (shape[-1], 4), dtype)
  b = jax.random.normal(keys[2], (4, 12), dtype)
  g = jax.random.normal(keys[3], shape[:-1] + (12,), dtype)
  return x, a, b, g


@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-5),
                                        (jnp.bfloat16, 2e-2)])
@pytest.mark.parametrize("shape", [(3, 5, 16), (7, 16)])
def test_values_and_gradients_equal_autodiff(dtype, rtol, shape):
  x, a, b, g = _operands(dtype, shape)
  outs = []
  for fn in (lora.lora_output, _plain):
    y, vjp = jax.vjp(lambda x, a, b, fn=fn: fn(x, a, b, 0.5), x, a, b)
    outs.append((y, *vjp(g)))
  for got, want in zip(*outs):
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    got, want = np.float32(got), np.float32(want)
    np.testing.assert_allclose(got, want, rtol=rtol,
                               atol=rtol * np.abs(want).max())


def test_factor_gradients_are_rank_major_products():
  # Autodiff's factor gradients came out (n, rank) and (rank, n) contracting
  # the rows as both operands' first dimension, with the (rows, n) gradient
  # copied transposed; XLA:CPU ran those 10x slower than (rank, rows) @
  # (rows, n).
  x, a, b, g = _operands(jnp.float32, (256, 64))
  loss = lambda x, a, b: jnp.vdot(lora.lora_output(x, a, b, 0.5), g)
  hlo = jax.jit(jax.grad(loss, (1, 2))).lower(x, a, b).compile().as_text()
  outputs = re.findall(r"= (f32\[[\d,]*\])\S* dot\(", hlo)
  assert "f32[4,64]" in outputs and "f32[4,12]" in outputs, outputs
  assert "f32[64,4]" not in outputs


def test_a_lora_models_adapter_gradients_equal_its_merged_kernels():
  """d loss / d (A, B) through the LoRA layers equals d loss / d (A, B) of
  the base model run on W + scale * A @ B (plain autodiff of the merge)."""
  config = TINY.replace(num_encoder_layers=1, num_decoder_layers=1)
  lora_model = EncoderDecoderModel(Transformer(config, states.LORA))
  base_model = EncoderDecoderModel(Transformer(config))
  v = jax.jit(lora_model.init_unboxed)(jax.random.key(0))
  adapters = jax.tree.map(lambda t: t + 0.05, v["adapters"])
  batch = jax.tree.map(jnp.asarray, states.make_batch(
      seed=1, batch=2, inputs=8, targets=6, vocab=TINY.vocab_size))

  def through_layers(adapters):
    return lora_model.loss_fn({"params": v["params"], "adapters": adapters},
                              batch, None)[0]

  def through_merge(adapters):
    flat = flatten_tree(v["params"])
    for module, leaves in deltas.adapter_modules(adapters).items():
      a, b = leaves[deltas.LORA_A], leaves[deltas.LORA_B]
      flat[f"{module}/kernel"] += states.LORA.scale * (a @ b)
    return base_model.loss_fn({"params": unflatten_tree(flat)}, batch,
                              None)[0]

  got, want = (jax.jit(jax.value_and_grad(f))(adapters)
               for f in (through_layers, through_merge))
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got[1]),
                          jax.tree.leaves(want[1])):
    assert float(np.abs(w).max()) > 0, path
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * np.abs(w).max(),
                               err_msg=jax.tree_util.keystr(path))
