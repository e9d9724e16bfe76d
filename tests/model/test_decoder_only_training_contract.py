"""DecoderOnlyModel's training side: loss_fn, and prompts that match training.

A prompt batched for decoding (`prompt_batch`: start token, left padding)
must continue exactly as the training batch of the same sequence predicts
(start token, right padding, no cache).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.models import families
from lta.models.contract import DecodingConfig
from lta.models.decoder.config import DecoderConfig

CONFIG = DecoderConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                       num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8,
                       tie_word_embeddings=False, bos_token_id=2)


@pytest.fixture(scope="module")
def model_and_variables():
  model = families.build_model(CONFIG)
  return model, jax.jit(model.init_unboxed)(jax.random.PRNGKey(0))


def test_loss_fn_is_cross_entropy_plus_z_loss_on_weighted_tokens_only(
    model_and_variables):
  model, variables = model_and_variables
  targets = np.array([[5, 6, 7, 8, 1, 0], [9, 10, 11, 1, 0, 0]], np.int32)
  batch = {"decoder_target_tokens": targets,
           "decoder_input_tokens": np.concatenate(
               [np.full((2, 1), model.decoder_start_id), targets[:, :-1]], 1),
           "decoder_loss_weights": np.array([[0, 0, 1, 1, 1, 0],
                                             [0, 1, 1, 1, 0, 0]], np.int32)}
  loss, aux, logits = jax.jit(lambda v, b: (
      *model.loss_fn(v, b, None), model.logits(v, b)))(variables, batch)
  logits = np.asarray(logits, np.float64)
  log_z = np.log(np.exp(logits).sum(-1))
  nll = log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
  w = batch["decoder_loss_weights"]
  want = ((nll + model.z_loss * log_z**2) * w).sum() / w.sum()
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(aux["cross_entropy"], (nll * w).sum() / w.sum(),
                             rtol=1e-5)
  assert aux["num_tokens"] == w.sum()


def test_prompt_batch_decodes_as_the_training_batch_predicts(
    model_and_variables):
  model, variables = model_and_variables
  prompts = [np.array([7, 8, 9, 10, 11]), np.array([12, 13])]
  steps = 3
  batch = model.prompt_batch(prompts, 6)
  assert batch["prompt_tokens"][1].tolist() == [0] * 4 + [2, 12, 13]
  assert batch["prompt_mask"][1].tolist() == [False] * 4 + [True] * 3
  got = jax.jit(lambda v, b: model.predict_batch(
      v, b, DecodingConfig(max_decode_length=steps)))(
          variables, jax.tree.map(jnp.asarray, batch))
  # Causal: right padding after the sequence changes no logit before it.
  width = 1 + 6 + steps
  logits_fn = jax.jit(lambda v, t: model.logits(
      v, {"decoder_input_tokens": t}))
  for row, prompt in enumerate(prompts):
    sequence = [model.decoder_start_id] + prompt.tolist()
    for _ in range(steps):
      tokens = np.zeros((1, width), np.int32)
      tokens[0, :len(sequence)] = sequence
      logits = logits_fn(variables, tokens)
      sequence.append(int(jnp.argmax(logits[0, len(sequence) - 1])))
    want = sequence[-steps:]
    if 1 in want:  # after EOS decoding writes padding
      want = want[:want.index(1) + 1] + [0] * (steps - want.index(1) - 1)
    assert np.asarray(got[row]).tolist() == want
