"""The fast step (ExecutionConfig) in mBART / NLLB and decoder-only models.

The claims of tests/model/test_execution.py (mT5), per family, through
lta.train.steps.token_sums (what train_step differentiates): the chunked
loss and remat give the plain step's loss and gradients; 8- and 16-bit
dropout masks replace every 32-bit mask the network draws. The masks'
distribution itself is family-independent (test_execution.py).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.adapters import trainable as trainable_lib
from lta.models import families
from lta.models.bart.config import BartConfig
from lta.models.decoder.config import DecoderConfig
from lta.models.execution import ExecutionConfig
from lta.train import steps
from tests.trainer import states

# One layer each, the tiniest widths: every claim holds per layer.
CONFIGS = {
    "mbart": BartConfig(model_type="mbart", vocab_size=64, d_model=16,
                        num_heads=2, d_ff=32, num_encoder_layers=1,
                        num_decoder_layers=1, max_position_embeddings=32,
                        activation="gelu", dropout_rate=0.0,
                        attention_dropout_rate=0.0, name="mbart-tiny"),
    "decoder_only": DecoderConfig(vocab_size=64, hidden_size=16,
                                  intermediate_size=32, num_layers=1,
                                  num_heads=2, num_kv_heads=1, head_dim=8,
                                  tie_word_embeddings=False, bos_token_id=2),
}
DROPOUT = {"mbart": dict(dropout_rate=0.3, attention_dropout_rate=0.3,
                         activation_dropout_rate=0.3),
           "decoder_only": dict(dropout_rate=0.3)}
_ENCODER_DECODER = states.make_batch(seed=1, batch=2, inputs=8, targets=8,
                                     vocab=64)
BATCHES = {"mbart": _ENCODER_DECODER,
           "decoder_only": {k: v for k, v in _ENCODER_DECODER.items()
                            if k != "encoder_input_tokens"}}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def family(request):
  """(name, LoRA variables with every adapter leaf away from zero)."""
  model = families.build_model(CONFIGS[request.param], states.LORA)
  v = jax.jit(model.init_unboxed)(jax.random.key(0))
  v["adapters"] = jax.tree.map(lambda x: x + 0.05, v["adapters"])
  return request.param, v


def _assert_same(got, want, rtol=1e-5):
  """Equal sums; gradients equal up to float32 reassociation: within rtol
  of each element or of the largest gradient element of the whole model.
  (BART's key bias has an exactly zero gradient, a softmax is invariant to
  it: what is computed there is rounding noise of that scale.)"""
  (sums, grads), (want_sums, want_grads) = got, want
  for k in want_sums:
    np.testing.assert_allclose(sums[k], want_sums[k], rtol=rtol, err_msg=k)
  flat, want_flat = (jax.tree_util.tree_leaves_with_path(g)
                     for g in (grads, want_grads))
  assert len(flat) == len(want_flat)
  scale = max(float(np.abs(w).max()) for _, w in want_flat)
  for (path, g), (_, w) in zip(flat, want_flat):
    assert g.dtype == jnp.float32, path
    np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale,
                               err_msg=jax.tree_util.keystr(path))


def _loss_and_grads(name, variables, execution, dropout_rng=None):
  config = CONFIGS[name]
  if dropout_rng is not None:
    config = config.replace(**DROPOUT[name])
  model = families.build_model(config, states.LORA, execution)
  trainable, frozen = trainable_lib.split_trainable(variables, ".*")
  grad_fn = jax.jit(jax.grad(steps.token_sums, has_aux=True),
                    static_argnums=(4,))
  grads, sums = grad_fn(trainable, frozen, BATCHES[name], dropout_rng, model)
  return sums, grads


def test_chunked_loss_and_remat_equal_the_plain_step(family):
  name, variables = family
  plain = _loss_and_grads(name, variables, ExecutionConfig())
  # 8 target positions in chunks of 2: four chunks, some fully padded.
  _assert_same(_loss_and_grads(
      name, variables, ExecutionConfig(loss_chunk_length=2)), plain)
  # Dropout on: remat recomputes the same masks, and the chunked loss keeps
  # the plain path's key below the output layer.
  rng = jax.random.key(7)
  want = _loss_and_grads(name, variables, ExecutionConfig(), rng)
  got = _loss_and_grads(
      name, variables,
      ExecutionConfig(remat_policy="full", loss_chunk_length=4), rng)
  _assert_same(got, want)
  assert abs(float(got[0]["loss"] - plain[0]["loss"])) > 1e-3  # dropout ran


def _random_words(jaxpr, primitive="random_bits") -> int:
  """32-bit random words the program draws with `primitive`, sub-programs
  included."""
  words = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == primitive:
      words += math.prod(eqn.params["shape"])
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          words += _random_words(inner, primitive)
  return words


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_low_bit_dropout_draws_one_word_per_4_or_2_elements(name):
  config = CONFIGS[name].replace(**DROPOUT[name])
  batch = jax.tree.map(jnp.asarray, BATCHES[name])
  drawn = {}
  for bits in (32, 16, 8):
    model = families.build_model(config, states.LORA,
                                 ExecutionConfig(dropout_mask_bits=bits))
    v = jax.eval_shape(model.init_unboxed, jax.random.key(0))
    drawn[bits] = _random_words(jax.make_jaxpr(model.loss_fn)(
        v, batch, jax.random.key(1)).jaxpr)
  # Every mask's last axis (widths 16 and 32, lengths 8) is a multiple of 4.
  assert drawn[32] > 0
  assert drawn[16] * 2 == drawn[32] and drawn[8] * 4 == drawn[32], drawn
  # XLA's generator draws as many words, and jax.random none.
  model = families.build_model(config, states.LORA, ExecutionConfig(
      dropout_mask_bits=8, dropout_rng="xla"))
  jaxpr = jax.make_jaxpr(model.loss_fn)(v, batch, jax.random.key(1)).jaxpr
  assert _random_words(jaxpr) == 0
  assert _random_words(jaxpr, "rng_bit_generator") == drawn[8]
