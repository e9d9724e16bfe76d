"""The tiny HF decoder-only fixtures (tests/fixtures/hf/decoder) and lta's
jitted forward pass and cached greedy decoding on their inputs.

Made by tests/fixtures/make_decoder_fixtures.py with transformers; each
family's <family>_tiny/ is an HF checkpoint and <family>_tiny.reference.npz
holds the references (see that script's docstring).
"""

import functools
import os

import jax
import numpy as np

from lta.checkpoints import hf_decoder
from lta.models.contract import DecodingConfig
from lta.models.decoder.network import DecoderOnly
from lta.models.decoder_only import DecoderOnlyModel

DECODER = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fixtures", "hf", "decoder")
FAMILIES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3")
LLAMA_SHARDED = os.path.join(DECODER, "llama_tiny_sharded")


def checkpoint(family: str) -> str:
  return os.path.join(DECODER, f"{family}_tiny")


@functools.lru_cache(maxsize=None)
def load(family: str):
  """(DecoderConfig, params) of <family>_tiny, read once per session."""
  return hf_decoder.load_hf_decoder(checkpoint(family))


@functools.lru_cache(maxsize=None)
def reference(family: str) -> dict:
  return dict(np.load(os.path.join(DECODER,
                                   f"{family}_tiny.reference.npz")))


@functools.lru_cache(maxsize=None)
def jitted_logits(config):
  module = DecoderOnly(config)
  return jax.jit(lambda v, tokens, mask: module.apply(v, tokens,
                                                      input_mask=mask))


@functools.lru_cache(maxsize=None)
def jitted_predict(config, decoding: DecodingConfig,
                   bidirectional_prompt: bool = False):
  """DecoderOnlyModel.predict_batch jitted as `lta eval` runs it:
  fn(variables, batch, rng=None)."""
  model = DecoderOnlyModel(DecoderOnly(config),
                           bidirectional_prompt=bidirectional_prompt)
  return jax.jit(lambda v, batch, rng=None: model.predict_batch(
      v, batch, decoding, rng))


def jitted_greedy(config, max_decode_length: int):
  return jitted_predict(config, DecodingConfig(
      method="greedy", max_decode_length=max_decode_length))
