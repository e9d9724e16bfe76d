"""lta's decoder-only families against transformers (issue 16).

For Llama, Qwen2, Qwen3, Gemma 2 and Gemma 3 (text), on the tiny random
fixtures of tests/fixtures/make_decoder_fixtures.py: logits on right-padded
rows longer than Gemma's sliding window (4), and lta's cached greedy
decoding (DecoderOnlyModel.predict_batch through lta.models.decoding, the
path `lta eval` runs) equal to `generate` on left-padded prompts, with rows
that stop at eos mid-sequence.
"""

import numpy as np
import pytest

from tests.model import decoder_fixtures as fx

TOLERANCE = 1e-4  # float32 parity with transformers (issue 16)


@pytest.mark.parametrize("family", fx.FAMILIES)
def test_logits_match_transformers_on_right_padded_rows(family):
  config, params = fx.load(family)
  ref = fx.reference(family)
  mask = ref["attention_mask"].astype(bool)
  # The batch exercises the sliding window and the padding mask.
  assert mask.sum(1).min() > (config.sliding_window or 4)
  assert not mask.all()
  logits = np.asarray(fx.jitted_logits(config)(
      {"params": params}, ref["input_ids"], mask))
  np.testing.assert_allclose(logits[mask], ref["logits"][mask],
                             atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("family", fx.FAMILIES)
def test_cached_greedy_decoding_equals_generate(family):
  config, params = fx.load(family)
  ref = fx.reference(family)
  prompt = ref["prompt_ids"]
  mask = ref["prompt_attention_mask"].astype(bool)
  assert not mask[:, 0].all() and mask[:, -1].all()  # left-padded
  want = ref["generated_ids"][:, prompt.shape[1]:]
  assert (want == config.eos_token_id).any(axis=1).sum() >= 2
  got = fx.jitted_greedy(config, want.shape[1])(
      {"params": params}, {"prompt_tokens": prompt, "prompt_mask": mask})
  np.testing.assert_array_equal(np.asarray(got), want)
