"""Beam search, sampling and the bidirectional prompt on decoder-only models,
through DecoderOnlyModel.predict_batch and lta's cached decoder (the path
`lta eval` runs), on the tiny HF fixtures of make_decoder_fixtures.py.

Beam search equals transformers' generate(num_beams=3, length_penalty=0) on
left-padded prompts (Llama, Qwen2, Qwen3); on the Gemma fixtures generate's
finishing rule drops hypotheses lta keeps, and lta's best score at least
generate's. Sampling equals an uncached loop written here: one full
forward pass over prompt + tokens so far per step, drawing with the same
keys as lta.models.decoding (one split per step). A model trained with the
bidirectional prefix (DecoderObjective.prefix_attention='bidirectional')
decodes as the uncached forward pass with the training prefix mask does.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta.models import decoding
from lta.models.contract import DecodingConfig
from lta.models.decoder.network import DecoderOnly
from lta.models.decoder_only import DecoderOnlyModel
from tests.model import decoder_fixtures as fx
from tests.model import hlo

SAMPLE = dict(method="sample", temperature=1.5, topk=20)


def _prompts(family):
  ref = fx.reference(family)
  return {"prompt_tokens": ref["prompt_ids"].astype(np.int32),
          "prompt_mask": ref["prompt_attention_mask"].astype(bool)}


def _steps(family):
  ref = fx.reference(family)
  return ref["generated_ids"].shape[1] - ref["prompt_ids"].shape[1]


def _beam_config(family):
  # generate: num_beams=3, length_penalty=0 (HF's length ** 0 and lta's
  # GNMT penalty at alpha 0 are both 1); both finish a hypothesis at the
  # length limit (lta's default rule).
  return DecodingConfig(method="beam", beam_size=3, alpha=0.0,
                        max_decode_length=_steps(family))


@pytest.mark.parametrize("family", [
    "llama", "qwen3", pytest.param("qwen2", marks=pytest.mark.slow)])
def test_cached_beam_search_equals_generate(family):
  config, params = fx.load(family)
  ref = fx.reference(family)
  got = np.asarray(fx.jitted_predict(config, _beam_config(family))(
      {"params": params}, _prompts(family)))
  np.testing.assert_array_equal(got, ref["beam_ids"])
  greedy = ref["generated_ids"][:, ref["prompt_ids"].shape[1]:]
  assert not np.array_equal(got, greedy)  # beam search matters here


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_beam_search_finds_at_least_generates_best(family):
  """Here generate's finishing rule (of a step's 2k candidates only the best
  k may end; lta.models.decoding's docstring) drops EOS hypotheses that
  lta keeps: lta returns other rows, each scoring at least generate's."""
  config, params = fx.load(family)
  ref = fx.reference(family)
  model = DecoderOnlyModel(DecoderOnly(config))
  prompts, steps = _prompts(family), _steps(family)

  @jax.jit
  def beam(v, tokens, mask):
    cache = model.initial_cache(v, tokens, mask, steps)
    return decoding.beam_search(
        model.tokens_to_logits_fn(v), cache, tokens.shape[0], steps,
        config.eos_token_id, beam_size=3, alpha=0.0,
        decoder_start_id=tokens[:, -1])

  ids, scores = (np.asarray(x) for x in beam(
      {"params": params}, prompts["prompt_tokens"], prompts["prompt_mask"]))
  np.testing.assert_array_equal(ids[:, 0], np.asarray(fx.jitted_predict(
      config, _beam_config(family))({"params": params}, prompts)))
  differs = (ids[:, 0] != ref["beam_ids"]).any(1)
  assert differs.any()
  assert np.all(scores[:, 0] >= ref["beam_scores"][:, 0] - 1e-4)
  assert np.all(scores[differs, 0] > ref["beam_scores"][differs, 0] + 1.0)
  # Where the rows agree, so do the model's log-probabilities.
  np.testing.assert_allclose(scores[~differs], ref["beam_scores"][~differs],
                             atol=1e-4)


@functools.lru_cache(maxsize=None)
def _uncached_logits(config):
  model = DecoderOnlyModel(DecoderOnly(config))
  return jax.jit(lambda v, tokens, mask, prefix: model.logits(v, {
      "decoder_input_tokens": tokens, "decoder_input_mask": mask,
      "decoder_positions": jnp.maximum(jnp.cumsum(mask, -1) - 1, 0),
      "decoder_causal_attention": prefix}))


def uncached_decode(config, params, prompts, steps, select, rng,
                    bidirectional=False):
  """Decodes without a cache: each step runs the whole sequence so far.

  select(logits (batch, vocab), key) -> tokens; the keys are split as
  lta.models.decoding splits them. With `bidirectional` the prompt is the
  prefix of the training batches (decoder_causal_attention). Returns ids
  (batch, steps), 0 after EOS.
  """
  prompt, prompt_mask = prompts["prompt_tokens"], prompts["prompt_mask"]
  batch, width = prompt.shape
  tokens = np.concatenate([prompt, np.zeros((batch, steps), np.int32)], 1)
  mask = np.concatenate([prompt_mask, np.zeros((batch, steps), bool)], 1)
  prefix = np.zeros_like(mask)
  if bidirectional:
    prefix[:, :width] = prompt_mask
  out = np.zeros((batch, steps), np.int32)
  ended = np.zeros(batch, bool)
  for step in range(steps):
    rng, step_rng = jax.random.split(rng)
    logits = _uncached_logits(config)({"params": params}, tokens, mask,
                                      prefix)[:, width - 1 + step]
    token = np.asarray(select(logits, step_rng))
    out[:, step] = np.where(ended, 0, token)
    ended |= token == config.eos_token_id
    tokens[:, width + step], mask[:, width + step] = token, True
  return out


def _sample_tokens(logits, key):
  tempered = logits / SAMPLE["temperature"]
  kth = jax.lax.top_k(tempered, SAMPLE["topk"])[0][:, -1:]
  return jax.random.categorical(
      key, jnp.where(tempered < kth, -jnp.inf, tempered), axis=-1)


def _greedy_tokens(logits, key):
  del key
  return jnp.argmax(logits, -1)


def test_cached_sampling_equals_an_uncached_loop_and_topk_1_is_greedy():
  family = "gemma2"  # sliding window 4 < prompt + new tokens; soft-caps
  config, params = fx.load(family)
  prompts, steps = _prompts(family), _steps(family)
  sample = fx.jitted_predict(config, DecodingConfig(
      max_decode_length=steps, **SAMPLE))
  greedy = fx.reference(family)["generated_ids"][:, -steps:]
  draws = []
  for seed in (0, 1):
    got = np.asarray(sample({"params": params}, prompts,
                            jax.random.key(seed)))
    want = uncached_decode(config, params, prompts, steps, _sample_tokens,
                           jax.random.key(seed))
    np.testing.assert_array_equal(got, want, err_msg=f"seed {seed}")
    draws.append(got)
  # The draws are samples: they depend on the key and leave greedy's path.
  assert not np.array_equal(draws[0], draws[1])
  assert not np.array_equal(draws[0], greedy)
  topk1 = fx.jitted_predict(config, DecodingConfig(
      method="sample", topk=1, max_decode_length=steps))
  np.testing.assert_array_equal(
      np.asarray(topk1({"params": params}, prompts, jax.random.key(0))),
      greedy)


def test_bidirectional_prompt_decodes_as_the_prefix_mask_scores():
  family = "gemma2"
  config, params = fx.load(family)
  prompts, steps = _prompts(family), _steps(family)
  predict = fx.jitted_predict(config, DecodingConfig(
      method="greedy", max_decode_length=steps), bidirectional_prompt=True)
  got = np.asarray(predict({"params": params}, prompts))
  want = uncached_decode(config, params, prompts, steps, _greedy_tokens,
                         jax.random.key(0), bidirectional=True)
  np.testing.assert_array_equal(got, want)
  # The prefix mask matters: causal decoding continues otherwise.
  causal = fx.reference(family)["generated_ids"][:, -steps:]
  assert not np.array_equal(got, causal)


def test_a_cached_decoding_step_copies_no_cache():
  # The key/value caches are head-major, the layout the attention dots
  # read: the decoding loop must not transpose them each step.
  config, params = fx.load("llama")
  batch = _prompts("llama")
  steps = _steps("llama")
  compiled = jax.jit(lambda v, b: DecoderOnlyModel(DecoderOnly(
      config)).predict_batch(v, b, DecodingConfig(max_decode_length=steps))
                     ).lower({"params": params}, batch).compile().as_text()
  rows, width = batch["prompt_tokens"].shape
  cache = rows * config.num_kv_heads * (width - 1 + steps) * config.head_dim
  assert not hlo.loop_body_copies(compiled, cache)
