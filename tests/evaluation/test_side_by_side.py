"""Several adapters decoded side by side (one vmapped call) give each one's
own decode: composed.stacked_on_device, scoring.decode_examples_stacked."""

import functools

import jax
import numpy as np
import pytest

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.adapters.tree import flatten_tree
from lta.eval import compilations
from lta.eval import composed
from lta.eval import scoring
from lta.models import families
from lta.models.bart.config import BartConfig
from lta.models.contract import DecodingConfig
from lta.models.decoder.config import DecoderConfig
from lta.models.mt5.config import T5Config

CONFIGS = {
    "mt5": T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32,
                    num_encoder_layers=1, num_decoder_layers=1,
                    dropout_rate=0.0, name="side-mt5"),
    "mbart": BartConfig(model_type="mbart", activation="gelu",
                        name="side-mbart", vocab_size=64, d_model=16,
                        num_heads=2, d_ff=32, num_encoder_layers=1,
                        num_decoder_layers=1, max_position_embeddings=32,
                        dropout_rate=0.0, attention_dropout_rate=0.0),
    "decoder": DecoderConfig(vocab_size=64, hidden_size=16,
                             intermediate_size=32, num_layers=1, num_heads=2,
                             num_kv_heads=1, head_dim=8, name="side-decoder"),
}
LORA = AdapterConfig(kind="lora", rank=2, alpha=2.0)
PROMPT = AdapterConfig(kind="prompt", num_virtual_tokens=3)
INPUT_LENGTH = 8
# 3 examples in batches of 2: the last batch is padded.
EXAMPLES = [{"inputs": np.array(row, np.int32)}
            for row in ([5, 9, 17, 33, 8, 11], [7, 21, 4], [12, 40, 6, 3])]


@functools.cache
def _base(family, kind):
  config = CONFIGS[family]
  adapter_config = LORA if kind == "lora" else PROMPT
  model = families.build_model(config, adapter_config)
  variables = jax.device_get(jax.jit(model.init_unboxed)(
      jax.random.PRNGKey(0)))
  return model, adapter_config, variables


def _adapters(family, kind, count, decoder_only=False):
  """`count` random adapters of one kind (what a λ sweep's compositions
  are to the decoder: the same leaves, other values)."""
  _, adapter_config, variables = _base(family, kind)
  rng = np.random.default_rng(1)
  out = []
  for i in range(count):
    tree = jax.tree.map(
        lambda x: (2.0 * rng.standard_normal(x.shape)).astype(np.float32),
        variables["adapters"])
    if decoder_only:
      tree = {"decoder": tree["decoder"]}
    manifest = AdapterManifest.for_tree(
        tree, adapter_config, base_model_fingerprint="sha256:test",
        base_model_name=CONFIGS[family].name, task="xlsum", language="en")
    out.append(Adapter(tree, manifest, name=f"adapter_{i}"))
  return out


def test_calls_are_even_and_a_short_last_call_repeats_its_last_member():
  assert composed.side_by_side(range(11), 4) == [
      [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 10]]
  assert composed.side_by_side(range(5), 4) == [[0, 1, 2], [3, 4, 4]]
  assert composed.side_by_side(range(3), 4) == [[0, 1, 2]]
  assert composed.side_by_side([7, 8], 1) == [[7], [8]]


def test_shared_leaves_are_the_bases_device_arrays_and_the_rest_stack():
  _, _, variables = _base("mt5", "lora")
  params = variables["params"]
  base_on_device = jax.device_put(params)
  merged = [composed.merged_variables(params, a)[0]
            for a in _adapters("mt5", "lora", 3, decoder_only=True)]
  tree, axes = composed.stacked_on_device(merged, params, base_on_device)
  device = flatten_tree(base_on_device)
  flat_axes = flatten_tree(axes)
  stacked = []
  for path, value in flatten_tree(tree).items():
    rest = path.partition("/")[2]
    if flat_axes[path] is None:
      assert value is device[rest]
      assert all(flatten_tree(m)[path] is flatten_tree(params)[rest]
                 for m in merged)
    else:
      assert flat_axes[path] == 0
      stacked.append(rest)
      np.testing.assert_array_equal(
          np.asarray(value), np.stack([flatten_tree(m)[path] for m in merged]))
  # q, k, v, o of the decoder's two attentions; nothing of the encoder.
  assert len(stacked) == 8 and all(p.startswith("decoder/") for p in stacked)
  assert (composed.stack_signature(merged[0], params) ==
          composed.stack_signature(merged[2], params))
  assert (composed.stack_signature(merged[0], params) !=
          composed.stack_signature({"params": params}, params))


@pytest.mark.parametrize("family,kind,reuse,method", [
    ("mt5", "lora", False, "greedy"),  # the encoder changes per adapter
    ("mt5", "lora", True, "greedy"),   # decoder adapters: one encoding
    ("mt5", "lora", False, "beam"),
    ("mt5", "lora", False, "sample"),  # each adapter gets alone's keys
    ("mbart", "prompt", False, "greedy"),  # unmerged: the prompts stack
    ("decoder", "lora", False, "greedy"),
])
def test_side_by_side_decodes_as_each_adapter_alone(family, kind, reuse,
                                                     method):
  model, _, variables = _base(family, kind)
  params = variables["params"]
  base_on_device = jax.device_put(params)
  adapters = _adapters(family, kind, 3, decoder_only=reuse)
  merged = []
  for adapter in adapters:
    merged_vars, encoder_unchanged = composed.merged_variables(params,
                                                               adapter)
    if family == "mt5":  # a decoder-only model has no encoder to change
      assert encoder_unchanged == reuse
    merged.append(merged_vars)
  predict = scoring.make_predict_fn(model, DecodingConfig(
      method=method, max_decode_length=5, beam_size=2))
  rng = jax.random.PRNGKey(3) if method == "sample" else None
  encoder = (scoring.EncoderReuse(model, {"params": base_on_device})
             if reuse else None)
  tree, axes = composed.stacked_on_device(merged, params, base_on_device)
  with compilations.counting() as compiled:
    together = scoring.decode_examples_stacked(
        predict, tree, axes, EXAMPLES, 2, INPUT_LENGTH, rng=rng,
        encoder=encoder)
  assert len(compiled.of("predict_batch_stacked")) == 1, compiled.names
  alone = [scoring.decode_examples(
      predict, composed.on_device(m, params, base_on_device), EXAMPLES, 2,
      INPUT_LENGTH, rng=rng, encoder=encoder) for m in merged]
  assert len(together) == len(adapters)
  for got, want in zip(together, alone):
    assert len(got) == len(EXAMPLES)
    np.testing.assert_array_equal(np.stack(got), np.stack(want))
  # Not vacuous: the adapters decode differently.
  assert len({np.stack(ids).tobytes() for ids in alone}) > 1


def test_adapters_per_call_below_one_is_refused_before_loading():
  with pytest.raises(errors.ConfigError, match=r"adapters_per_call=0: must "
                     r"be at least 1"):
    composed.MergedScorer("/nonexistent/base", {"inputs": 8}, 2,
                          DecodingConfig(), adapters_per_call=0)
