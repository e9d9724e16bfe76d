"""Paths of the HF fixtures and lta's forward pass on their inputs."""

import functools
import os

import jax
import numpy as np

from lta.model.network import Transformer

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fixtures", "hf")
MT5 = os.path.join(FIXTURES, "mt5_tiny")
MT5_SHARDED = os.path.join(FIXTURES, "mt5_tiny_sharded")
T5V1 = os.path.join(FIXTURES, "t5v1_tiny")


def reference(name: str):
  return dict(np.load(os.path.join(FIXTURES, f"{name}.reference.npz")))


@functools.lru_cache(maxsize=None)
def _jitted(config, adapter):
  model = Transformer(config=config, adapter=adapter)
  logits = jax.jit(lambda v, e, d: model.apply(v, e, d, enable_dropout=False))
  encode = jax.jit(lambda v, e: model.apply(
      v, e, enable_dropout=False, method=Transformer.encode))
  return logits, encode


def lta_logits(config, params, enc, dec, adapter=None, adapters=None):
  variables = {"params": params}
  if adapters is not None:
    variables["adapters"] = adapters
  return np.asarray(_jitted(config, adapter)[0](variables, enc, dec))


def lta_encode(config, params, enc):
  return np.asarray(_jitted(config, None)[1]({"params": params}, enc))


def greedy(config, params, enc, steps):
  """Greedy decoding as transformers' generate does it (pad after eos)."""
  batch = enc.shape[0]
  dec = np.full((batch, steps + 1), config.pad_token_id, np.int32)
  dec[:, 0] = config.decoder_start_token_id
  done = np.zeros(batch, bool)
  for t in range(steps):
    # Causal: the logits at t ignore the placeholder tokens after t.
    nxt = lta_logits(config, params, enc, dec)[:, t].argmax(-1)
    nxt = np.where(done, config.pad_token_id, nxt)
    done |= nxt == config.eos_token_id
    dec[:, t + 1] = nxt
  return dec
