"""Shared builders for trainer tests: a model, a train state, token batches."""

import jax
import numpy as np
import optax

from lta.train import state as train_state
from lta.models.mt5.network import Transformer
from lta.models.contract import EncoderDecoderModel
from lta.adapters.config import AdapterConfig
from tests.trainer.fixture_task import CONFIG

LORA = AdapterConfig(kind="lora", rank=2, alpha=2.0)


def make_model(adapter=LORA, config=CONFIG) -> EncoderDecoderModel:
  return EncoderDecoderModel(Transformer(config, adapter))


def make_state(model, pattern="adapters", optimizer=None, seed=0):
  optimizer = optimizer or optax.adamw(1e-2)
  variables = model.init_unboxed(jax.random.PRNGKey(seed))
  return train_state.create(variables, pattern, optimizer, seed), optimizer


def make_batch(seed=0, batch=8, inputs=12, targets=6, vocab=CONFIG.vocab_size):
  """Random tokens with ragged padding, so examples differ in token count."""
  rng = np.random.default_rng(seed)
  enc = rng.integers(3, vocab, (batch, inputs), dtype=np.int32)
  tgt = rng.integers(3, vocab, (batch, targets), dtype=np.int32)
  for i in range(batch):
    enc[i, rng.integers(2, inputs):] = 0
    tgt[i, rng.integers(1, targets):] = 0
  dec_in = np.concatenate([np.zeros((batch, 1), np.int32), tgt[:, :-1]], 1)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec_in,
          "decoder_target_tokens": tgt,
          "decoder_loss_weights": (tgt > 0).astype(np.int32)}


def host_copy(tree):
  """A numpy copy (device buffers may be donated afterwards)."""
  return jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(tree))
