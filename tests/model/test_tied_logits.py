"""layers.tied_logits: the tied output layer, vocabulary-major for the few
rows of a decoding step, equals flax's Embed.attend."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.models import layers


class _Head(nn.Module):
  @nn.compact
  def __call__(self, x):
    embed = nn.Embed(1000, 24)
    return layers.tied_logits(embed, x), embed.attend(x)


@pytest.mark.parametrize("shape", [(4, 1, 24), (2, 24), (3, 8, 24)])
def test_equals_attend_for_few_and_many_rows(shape):
  x = jax.random.normal(jax.random.PRNGKey(1), shape)
  variables = _Head().init(jax.random.PRNGKey(0), x)
  got, want = jax.jit(_Head().apply)(variables, x)
  assert got.shape == want.shape == shape[:-1] + (1000,)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_array_equal(np.asarray(got).argmax(-1),
                                np.asarray(want).argmax(-1))


def test_few_rows_take_the_vocabulary_major_product_and_differentiate():
  x = jnp.ones((4, 1, 24))
  variables = _Head().init(jax.random.PRNGKey(0), x)
  fn = jax.jit(lambda v, x: _Head().apply(v, x)[0])
  hlo = fn.lower(variables, x).as_text()
  assert "optimization_barrier" in hlo
  many = jnp.ones((3, layers.FEW_ROWS, 24))
  assert "optimization_barrier" not in fn.lower(variables, many).as_text()
  grads = [jax.grad(lambda v, i=i: _Head().apply(v, x)[i].sum())(variables)
           for i in (0, 1)]
  np.testing.assert_allclose(
      np.asarray(grads[0]["params"]["Embed_0"]["embedding"]),
      np.asarray(grads[1]["params"]["Embed_0"]["embedding"]), rtol=1e-5)
