"""composed.on_device: a merged adapter moves only the kernels it changed."""

import jax
import numpy as np

from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.adapters.tree import flatten_tree
from lta.eval import composed
from lta.models import families
from lta.models.mt5.config import T5Config

CONFIG = T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32,
                  num_encoder_layers=1, num_decoder_layers=1,
                  dropout_rate=0.0, name="on-device-test")
LORA = AdapterConfig(kind="lora", rank=2, alpha=2.0)


def _base_and_adapter(decoder_only: bool):
  variables = jax.jit(families.build_model(CONFIG, LORA).init_unboxed)(
      jax.random.PRNGKey(0))
  params = jax.device_get(variables["params"])
  rng = np.random.default_rng(0)
  tree = jax.tree.map(
      lambda x: rng.standard_normal(x.shape).astype(np.float32),
      jax.device_get(variables["adapters"]))
  if decoder_only:
    tree = {"decoder": tree["decoder"]}
  manifest = AdapterManifest.for_tree(
      tree, LORA, base_model_fingerprint="sha256:test",
      base_model_name="on-device-test", task="xlsum", language="en")
  return params, Adapter(tree, manifest, name="xlsum_en")


def test_unchanged_leaves_are_the_bases_device_arrays():
  params, adapter = _base_and_adapter(decoder_only=True)
  base_on_device = jax.device_put(params)
  merged, encoder_unchanged = composed.merged_variables(params, adapter)
  assert encoder_unchanged
  got = flatten_tree(composed.on_device(merged, params, base_on_device))
  device = flatten_tree(base_on_device)
  want = flatten_tree(merged)
  base_flat = flatten_tree(params)
  assert sorted(got) == sorted(want)
  moved = []
  for path, value in got.items():
    assert isinstance(value, jax.Array), path
    np.testing.assert_array_equal(np.asarray(value), want[path], path)
    rest = path.partition("/")[2]
    if value is device[rest]:
      assert want[path] is base_flat[rest]  # the base's, unchanged
    else:
      moved.append(rest)
  # Exactly the kernels LoRA changed (q, k, v, o of the decoder's two
  # attentions); the embeddings and the encoder stay where they are.
  assert moved and all(p.startswith("decoder/") and p.endswith("/kernel")
                       for p in moved), moved
  assert len(moved) == 8, moved


def test_unmerged_adapters_and_the_plain_base_go_to_the_device():
  params, adapter = _base_and_adapter(decoder_only=False)
  base_on_device = jax.device_put(params)
  plain = composed.on_device({"params": params}, params, base_on_device)
  assert all(a is b for a, b in zip(jax.tree.leaves(plain["params"]),
                                    jax.tree.leaves(base_on_device)))
  with_adapters = {"params": params, "adapters": adapter.tree}
  got = composed.on_device(with_adapters, params, base_on_device)
  for path, value in flatten_tree(got["adapters"]).items():
    assert isinstance(value, jax.Array)
    np.testing.assert_array_equal(np.asarray(value),
                                  flatten_tree(adapter.tree)[path])
