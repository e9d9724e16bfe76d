"""Bottleneck adapters and prompt tuning on mBART, NLLB and decoder-only bases.

Each family places the one Bottleneck block of lta.models.adapter_layers
(Houlsby: after self-attention and MLP; Pfeiffer: after the MLP) and
prepends the one soft prompt (the encoder's input, or a decoder-only
model's): a fresh bottleneck is the base, bit for bit, and merges into
nothing; a prompt decodes through the family's own cached predict_batch
exactly as an uncached full-forward greedy loop does.
"""


import functools

import jax
import numpy as np
import pytest

from lta.adapters import deltas
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.arithmetic import compat
from lta.arithmetic import compositions
from lta.checkpoints import fingerprint
from lta.errors import ConfigError
from lta.adapters.config import AdapterConfig
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.eval import scoring
from lta.models import families
from lta.models.bart.config import BartConfig
from lta.models.contract import DecodingConfig
from lta.models.decoder.config import DecoderConfig
from tests.checkpoints import hf_fixtures as fx

_BART = dict(vocab_size=64, d_model=16, num_heads=2, d_ff=32,
             num_encoder_layers=1, num_decoder_layers=1,
             max_position_embeddings=32, dropout_rate=0.0,
             attention_dropout_rate=0.0)
CONFIGS = {
    "mbart": BartConfig(model_type="mbart", activation="gelu", name="mbart-t",
                        **_BART),
    "nllb": BartConfig(model_type="m2m_100", name="nllb-t", **_BART),
    "decoder": DecoderConfig(vocab_size=64, hidden_size=16,
                             intermediate_size=32, num_layers=1, num_heads=2,
                             num_kv_heads=1, head_dim=8),
}
BOTTLENECK = AdapterConfig(kind="bottleneck", bottleneck_width=4)
PROMPT = AdapterConfig(kind="prompt", num_virtual_tokens=3)
STEPS = 5
# Rows of real tokens (ids >= 3: clear of pad, bos and eos in both id
# conventions); shorter rows are padded.
ROWS = [[5, 9, 17, 33, 8, 11], [7, 21, 4]]


def _is_decoder_only(family):
  return family == "decoder"


@functools.cache
def _init(family, adapter):
  """(model, variables), each (family, adapter) compiled once per module."""
  model = families.build_model(CONFIGS[family], adapter)
  return model, jax.jit(model.init_unboxed)(jax.random.PRNGKey(0))


def _forward_batch(model, family):
  """A padded batch the network's full forward pass reads."""
  if _is_decoder_only(family):
    tokens = model.prompt_batch(ROWS, 6)
    mask = tokens["prompt_mask"]
    return {"decoder_input_tokens": tokens["prompt_tokens"],
            "decoder_input_mask": mask,
            "decoder_positions": np.maximum(np.cumsum(mask, -1) - 1, 0)}
  enc = model.prompt_batch(ROWS, 8)["encoder_input_tokens"]
  dec = np.array([[2, 5, 6, 7], [2, 8, 1, 1]], np.int32)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec}


@functools.cache
def _logits_fn(model, family):
  if _is_decoder_only(family):
    return jax.jit(model.logits)
  return jax.jit(lambda variables, batch: model.module.apply(
      variables, batch["encoder_input_tokens"],
      batch["decoder_input_tokens"]))


# The default tier's budget takes one bart variant per kind: the bottleneck
# code is the same for both, and the prompt's positions differ most in
# NLLB's (counted over real slots); the other variant runs with -m slow.
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("family", [
    "mbart", pytest.param("nllb", marks=_SLOW), "decoder"])
def test_bottleneck_starts_as_the_base_and_merges_into_nothing(family):
  model, variables = _init(family, BOTTLENECK)
  params, fresh = variables["params"], variables["adapters"]
  stacks = ("decoder",) if _is_decoder_only(family) else ("encoder",
                                                          "decoder")
  self_attention = {"encoder": "attention",
                    "decoder": ("attention" if _is_decoder_only(family)
                                else "self_attention")}
  assert set(deltas.adapter_modules(fresh)) == {
      f"{s}/layers_0/{sub}_adapter" for s in stacks
      for sub in (self_attention[s], "mlp")}
  pfeiffer = jax.eval_shape(families.build_model(
      CONFIGS[family], AdapterConfig(kind="bottleneck", bottleneck_width=4,
                                     bottleneck_placement="pfeiffer")
  ).init_unboxed, jax.random.PRNGKey(0))["adapters"]
  assert set(deltas.adapter_modules(pfeiffer)) == {
      f"{s}/layers_0/mlp_adapter" for s in stacks}

  logits = _logits_fn(model, family)
  batch = _forward_batch(model, family)
  base = logits({"params": params}, batch)
  np.testing.assert_array_equal(
      logits({"params": params, "adapters": fresh}, batch), base)
  fx.assert_same_params(deltas.merge_into_base(params, fresh, BOTTLENECK),
                        params)
  rng = np.random.default_rng(0)
  trained = unflatten_tree({
      p: (rng.normal(size=v.shape).astype(np.float32) if "/up_" in p else v)
      for p, v in flatten_tree(fresh).items()})
  moved = logits({"params": params, "adapters": trained}, batch)
  assert np.abs(np.asarray(moved) - np.asarray(base)).max() > 1e-2


def _after_eos(ids, eos_id):
  """ids with every position after a row's first EOS set to -1."""
  is_eos = (ids == eos_id).astype(np.int32)
  return np.where(np.cumsum(is_eos, -1) - is_eos > 0, -1, ids)


def _uncached_greedy(model, family, variables, batch):
  """Greedy ids by the full forward pass over everything so far, padded to
  a fixed width so that one compiled function serves every step (the
  attention is causal: later slots cannot change earlier logits)."""
  logits = _logits_fn(model, family)
  if _is_decoder_only(family):
    prompt, mask = batch["prompt_tokens"], batch["prompt_mask"]
    width = prompt.shape[1]
    tokens = np.concatenate(
        [prompt, np.zeros((len(prompt), STEPS), np.int32)], 1)
    mask = np.concatenate([mask, np.ones((len(prompt), STEPS), bool)], 1)
    positions = np.maximum(np.cumsum(mask, -1) - 1, 0)
    for t in range(STEPS):
      out = logits(variables, {"decoder_input_tokens": tokens,
                               "decoder_input_mask": mask,
                               "decoder_positions": positions})
      tokens[:, width + t] = np.argmax(out[:, width - 1 + t], -1)
    return tokens[:, width:]
  enc = batch["encoder_input_tokens"]
  dec = np.full((len(enc), STEPS), model.config.pad_token_id, np.int32)
  dec[:, 0] = model.config.decoder_start_token_id
  ids = np.zeros_like(dec)
  for t in range(STEPS):
    out = logits(variables, {"encoder_input_tokens": enc,
                             "decoder_input_tokens": dec})
    ids[:, t] = np.argmax(out[:, t], -1)
    if t + 1 < STEPS:
      dec[:, t + 1] = ids[:, t]
  return ids


@pytest.mark.parametrize("family", [
    pytest.param("mbart", marks=_SLOW), "nllb", "decoder"])
def test_cached_greedy_with_a_prompt_equals_the_uncached_loop(family):
  model, variables = _init(family, PROMPT)
  stack = "decoder" if _is_decoder_only(family) else "encoder"
  prompt = flatten_tree(variables["adapters"])
  assert {p: v.shape for p, v in prompt.items()} == {
      f"{stack}/prompt": (3, 16)}
  batch = model.prompt_batch(ROWS, 8 if not _is_decoder_only(family) else 6)
  predict = scoring.make_predict_fn(model,
                                    DecodingConfig(max_decode_length=STEPS))
  got = np.asarray(predict(variables, batch))
  want = _uncached_greedy(model, family, variables, batch)
  eos = model.config.eos_token_id
  np.testing.assert_array_equal(_after_eos(got, eos), _after_eos(want, eos))
  # Not vacuous: the prompt's values move the logits of the real tokens.
  logits = _logits_fn(model, family)
  fwd = _forward_batch(model, family)
  with_prompt = np.asarray(logits(variables, fwd))
  assert with_prompt.shape[:2] == fwd["decoder_input_tokens"].shape
  other = jax.tree.map(lambda p: -p, variables["adapters"])
  moved = np.asarray(logits({**variables, "adapters": other}, fwd))
  assert np.abs(with_prompt - moved).max() > 1e-2


def _adapter(family, task, language):
  """An lta Adapter of the family's fresh prompt, as training records it."""
  model, variables = _init(family, PROMPT)
  config = CONFIGS[family]
  manifest = AdapterManifest.for_tree(
      variables["adapters"], PROMPT,
      base_model_fingerprint=fingerprint.base_model_fingerprint(
          config, jax.tree.map(np.asarray, variables["params"])),
      base_model_name=config.name, task=task, language=language)
  return Adapter(variables["adapters"], manifest, f"{task}[{config.name}]")


def test_prompts_of_a_bart_and_a_decoder_only_base_do_not_combine():
  task = _adapter("nllb", "xlsum", "en")
  language = _adapter("decoder", "mc4_prefix_lm", "en")
  # Same prompt length and width: only the bases tell them apart.
  assert [list(v.shape) for v in flatten_tree(task.tree).values()] == [
      list(v.shape) for v in flatten_tree(language.tree).values()]
  with pytest.raises(compat.IncompatibleAdaptersError) as e:
    compositions.compose("lang_task_add", task_vectors={"en": task},
                         language_vectors={"en": language}, target="en",
                         sources="en", lam=0.5)
  message = str(e.value)
  assert "\n" not in message
  for adapter in (task, language):
    assert adapter.label in message
    assert adapter.manifest.base_model_fingerprint in message
    assert repr(adapter.manifest.base_model_name) in message


def test_a_decoder_only_prompt_refuses_packed_batches():
  model, variables = _init("decoder", PROMPT)
  tokens = np.array([[2, 5, 6, 2, 7, 8]], np.int32)
  packed = {"decoder_input_tokens": tokens,
            "decoder_segment_ids": np.array([[1, 1, 1, 2, 2, 2]]),
            "decoder_positions": np.array([[0, 1, 2, 0, 1, 2]])}
  with pytest.raises(ConfigError, match="DecoderObjective.pack=False") as e:
    model.logits(variables, packed)
  assert "\n" not in str(e.value)
