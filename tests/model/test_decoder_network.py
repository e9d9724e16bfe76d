"""The decoder-only network's contract beyond HF parity: logical axis names
the mesh rules know, adapters placed by AdapterConfig's default regexes,
scoring against transformers' logits, and beam search through the cache.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lta import errors
from lta import partitioning
from lta.adapters import config as adapter_config
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.models import decoding
from lta.models.decoder.config import DecoderConfig
from lta.models.decoder.network import DecoderOnly, param_shapes
from lta.models.decoder_only import DecoderOnlyModel, left_pad
from tests.model import decoder_fixtures as fx

# Every option at once: q/k/v biases, q/k norms, Gemma norms, a sliding
# layer with its own rope base, soft-caps and an untied head.
EVERYTHING = DecoderConfig(
    family="gemma3", vocab_size=64, hidden_size=16, intermediate_size=24,
    num_layers=2, num_heads=4, num_kv_heads=2, head_dim=6, qkv_bias=True,
    qk_norm=True, gemma_norms=True, scale_embeddings=True,
    attn_logit_softcap=5.0, final_logit_softcap=10.0,
    tie_word_embeddings=False, local_rope_theta=100.0, sliding_window=3,
    sliding_window_pattern=2, activation="gelu_tanh")


def _boxed_shapes(adapter=None):
  model = DecoderOnly(EVERYTHING, adapter)
  return jax.eval_shape(lambda: model.init(jax.random.key(0),
                                           jnp.ones((1, 5), jnp.int32)))


def test_every_variable_has_logical_axis_names_the_mesh_rules_know():
  adapter = adapter_config.AdapterConfig(
      kind="lora", rank=2,
      targets=f"{adapter_config.ATTENTION_TARGETS}|"
              f"{adapter_config.MLP_TARGETS}")
  variables = _boxed_shapes(adapter)
  known = {name for name, _ in partitioning.LOGICAL_AXIS_RULES}
  for collection in ("params", "adapters"):
    leaves = jax.tree_util.tree_leaves(
        variables[collection], is_leaf=lambda x: hasattr(x, "names"))
    assert leaves and all(hasattr(x, "names") for x in leaves)
    assert all(len(x.names) == len(x.value.shape) for x in leaves)
    assert {n for x in leaves for n in x.names} <= known
  params = flatten_tree(jax.tree_util.tree_map(
      lambda x: x.value.shape, variables["params"],
      is_leaf=lambda x: hasattr(x, "names")))
  assert params == param_shapes(EVERYTHING)


def test_default_adapter_regexes_reach_every_projection():
  adapters = flatten_tree(_boxed_shapes(adapter_config.AdapterConfig(
      kind="lora", rank=2, targets=adapter_config.ATTENTION_TARGETS))[
          "adapters"])
  modules = {k.rsplit("/", 1)[0] for k in adapters}
  assert modules == {f"decoder/layers_{i}/attention/{p}"
                     for i in range(2)
                     for p in ("query", "key", "value", "out")}
  mlp = flatten_tree(_boxed_shapes(adapter_config.AdapterConfig(
      kind="lora", rank=2, targets=adapter_config.MLP_TARGETS))["adapters"])
  assert {k.rsplit("/", 1)[0] for k in mlp} == {
      f"decoder/layers_{i}/mlp/{m}" for i in range(2)
      for m in ("wi_0", "wi_1", "wo")}


def test_adapter_targets_matching_no_kernel_are_refused():
  model = DecoderOnlyModel(DecoderOnly(EVERYTHING, adapter_config.AdapterConfig(
      kind="lora", rank=2, targets=r"encoder/.*/query/kernel")))
  with pytest.raises(errors.ConfigError, match=r"matches no kernel; kernel "
                     r"paths look like 'decoder/layers_0/attention/query"):
    jax.eval_shape(lambda: model.init_variables(jax.random.key(0)))


def test_scores_match_transformers_log_likelihoods():
  config, params = fx.load("gemma2")
  ref = fx.reference("gemma2")
  ids, mask = ref["input_ids"], ref["attention_mask"]
  targets = np.pad(ids[:, 1:], ((0, 0), (0, 1)))
  weights = np.pad(mask[:, 1:], ((0, 0), (0, 1)))
  model = DecoderOnlyModel(DecoderOnly(config))
  got = jax.jit(model.score_batch)({"params": params}, {
      "decoder_input_tokens": ids, "decoder_target_tokens": targets,
      "decoder_loss_weights": weights, "decoder_input_mask": mask})
  log_p = jax.nn.log_softmax(ref["logits"].astype(np.float64))
  want = (np.take_along_axis(np.asarray(log_p), targets[..., None], -1)[
      ..., 0] * weights).sum(-1)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-3, rtol=0)


def test_left_pad_moves_right_padded_rows_to_the_right():
  tokens = jnp.array([[5, 6, 7, 0], [8, 0, 0, 0]])
  got, mask = left_pad(tokens, tokens > 0)
  np.testing.assert_array_equal(got, [[0, 5, 6, 7], [0, 0, 0, 8]])
  np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1]])


@pytest.mark.slow
def test_beam_search_scores_equal_uncached_scoring():
  """Beam search reorders the cache (k/v, real key slots, positions) as
  beams swap; the best hypothesis' summed log-probability (alpha 0) must
  equal an uncached forward pass over prompt + hypothesis, and be at least
  the greedy one's."""
  config, params = fx.load("qwen3")
  ref = fx.reference("qwen3")
  prompt, mask = ref["prompt_ids"], ref["prompt_attention_mask"].astype(bool)
  model = DecoderOnlyModel(DecoderOnly(config))
  variables = {"params": params}
  steps = 6

  @jax.jit
  def beam(v):
    cache = model.initial_cache(v, jnp.asarray(prompt), jnp.asarray(mask),
                                steps)
    return decoding.beam_search(
        model.tokens_to_logits_fn(v), cache, prompt.shape[0], steps,
        config.eos_token_id, beam_size=3, alpha=0.0,
        decoder_start_id=jnp.asarray(prompt[:, -1]))

  ids, scores = (np.asarray(x) for x in beam(variables))
  greedy = np.asarray(fx.jitted_greedy(config, steps)(
      variables, {"prompt_tokens": prompt, "prompt_mask": mask}))
  score = jax.jit(model.score_batch)
  for new, want in ((ids[:, 0], scores[:, 0]), (greedy, None)):
    full = np.concatenate([prompt, new], axis=1)
    real = np.concatenate([mask, np.ones_like(new, bool)], axis=1)
    is_eos = new == config.eos_token_id
    through_eos = (np.cumsum(is_eos, axis=1) - is_eos) == 0
    weights = np.concatenate([np.zeros_like(mask), through_eos], axis=1)
    got = np.asarray(score(variables, {
        "decoder_input_tokens": full[:, :-1],
        "decoder_target_tokens": full[:, 1:],
        "decoder_loss_weights": weights[:, 1:],
        "decoder_input_mask": real[:, :-1],
        "decoder_positions": np.maximum(np.cumsum(real, 1) - 1, 0)[:, :-1]}))
    if want is not None:
      np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
      best = got
  assert np.all(best >= got - 1e-4)  # beam >= greedy


@pytest.fixture(scope="module")
def everything_forward():
  module = DecoderOnly(EVERYTHING)
  rng = np.random.default_rng(0)  # no init compile: random values by path
  params = unflatten_tree({
      path: rng.normal(0, 0.3, shape).astype(np.float32)
      for path, shape in param_shapes(EVERYTHING).items()})
  forward = jax.jit(lambda tokens, positions, segments, prefix: module.apply(
      {"params": params}, tokens, positions=positions, segment_ids=segments,
      prefix_mask=prefix))
  # Always all four arrays, of one shape: one compile serves every call.
  return lambda *args: np.asarray(forward(*args))


def test_packed_rows_equal_the_rows_alone(everything_forward):
  a = np.array([5, 9, 14, 3, 7], np.int32)
  b = np.array([11, 4, 8], np.int32)
  packed = np.concatenate([a, b])[None]
  segments = np.array([[1] * 5 + [2] * 3])
  positions = np.array([[0, 1, 2, 3, 4, 0, 1, 2]])
  no_prefix = np.zeros((1, 8), bool)
  got = everything_forward(packed, positions, segments, no_prefix)
  alone = [everything_forward(np.pad(x, (0, 8 - len(x)))[None],
                              np.arange(8)[None],
                              (np.arange(8) < len(x)).astype(np.int32)[None],
                              no_prefix) for x in (a, b)]
  alone_a, alone_b = alone
  np.testing.assert_allclose(got[0, :5], alone_a[0, :5], atol=1e-5)
  np.testing.assert_allclose(got[0, 5:], alone_b[0, :3], atol=1e-5)


def test_prefix_attends_both_ways_and_the_rest_stays_causal(
    everything_forward):
  tokens = np.array([[5, 9, 14, 3, 7, 11, 4, 8]], np.int32)
  changed = tokens.copy()
  changed[0, 2] = 20  # the last prefix token
  prefix = np.array([[True] * 3 + [False] * 5])
  positions = np.arange(8)[None]
  segments = np.ones((1, 8), np.int32)
  moved = np.abs(everything_forward(tokens, positions, segments, prefix) -
                 everything_forward(changed, positions, segments, prefix)
                 ).max(-1)[0]
  assert moved[:2].min() > 1e-3  # earlier prefix tokens see token 2
  causal = np.abs(
      everything_forward(tokens, positions, segments, ~prefix) -
      everything_forward(changed, positions, segments, ~prefix)).max(-1)[0]
  assert causal[:2].max() == 0 and causal[2:].min() > 1e-3
