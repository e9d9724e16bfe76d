"""LoRA and Kronecker adapters on the decoder-only tree (issue 16).

The network's Projection layers carry the adapters that AdapterConfig's
regex chooses (q/k/v/o by default, the MLP too with MLP_TARGETS; the gin
files in gin/peft/ use these regexes); the trainable tree is the adapters
only; merging into the base kernels gives the carried logits and unmerging
the base back; a manifest binds an adapter to its base's fingerprint and
an adapter of another base is refused.
"""

import pathlib
import re

import gin
import jax
import numpy as np
import pytest

from lta.adapters import adapter_io
from lta.adapters import deltas
from lta.adapters import trainable as trainable_lib
from lta.adapters.config import ATTENTION_TARGETS, MLP_TARGETS, AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.arithmetic import compat
from lta.checkpoints.fingerprint import base_model_fingerprint
from lta.models import layers
from lta.models.decoder.config import DecoderConfig
from lta.models.decoder.network import DecoderOnly, param_shapes
from lta.models.decoder_only import DecoderOnlyModel
from tests.model import decoder_fixtures as fx

GIN_DIR = pathlib.Path(__file__).resolve().parents[2] / "gin"
BOTH = f"(?:{ATTENTION_TARGETS})|(?:{MLP_TARGETS})"
ADAPTERS = {
    "lora": AdapterConfig(kind="lora", rank=2, alpha=4.0),
    "krona": AdapterConfig(kind="krona", kron_factors=(4, 4), alpha=2.0),
    "lokr_mlp": AdapterConfig(kind="krona", kron_factors=(4, 4), alpha=2.0,
                              kron_b_rank=2, targets=BOTH),
    "lora_mlp_only": AdapterConfig(kind="lora", rank=2, alpha=2.0,
                                   targets=MLP_TARGETS),
}


def _random_adapter_tree(config, adapter, seed):
  """Every targeted kernel's adapter leaves, all random (B too)."""
  rng = np.random.default_rng(seed)
  flat = {}
  for path, shape in param_shapes(config).items():
    if path.endswith("/kernel") and adapter.matches(path):
      for leaf, leaf_shape in adapter.leaf_shapes(*shape).items():
        flat[f"{path[:-len('/kernel')]}/{leaf}"] = (
            0.3 * rng.normal(size=leaf_shape)).astype(np.float32)
  return unflatten_tree(flat)


@pytest.mark.parametrize("name", ADAPTERS)
def test_regex_chooses_the_adapted_kernels(name):
  config, _ = fx.load("gemma3")  # q/k norms, GQA, untied-norm Gemma blocks
  adapter = ADAPTERS[name]
  model = DecoderOnlyModel(DecoderOnly(config, adapter))
  variables = jax.eval_shape(
      lambda: model.init_unboxed(jax.random.key(0), length=4))
  kernels = {p for p in param_shapes(config) if p.endswith("/kernel")}
  want = {p[:-len("/kernel")] for p in kernels
          if re.fullmatch(adapter.targets, p)}
  got = deltas.adapter_modules(variables["adapters"])
  assert set(got) == want
  attention = {m for m in want if "/attention/" in m}
  assert len(attention) == (0 if name == "lora_mlp_only" else
                            4 * config.num_layers)
  for module, leaves in got.items():
    shape = param_shapes(config)[f"{module}/kernel"]
    assert {k: v.shape for k, v in leaves.items()} == \
        adapter.leaf_shapes(*shape), module
  # The trainable tree is the adapters, and nothing of the base.
  trainable, frozen = trainable_lib.split_trainable(variables, "adapters")
  assert set(trainable) == {"adapters"} and "adapters" not in frozen
  assert flatten_tree(frozen["params"]).keys() == \
      flatten_tree(variables["params"]).keys()
  assert flatten_tree(trainable_lib.combine(trainable, frozen)).keys() == \
      flatten_tree(variables).keys()


@pytest.mark.parametrize("name", ["krona", "lokr_mlp"])
def test_kronecker_merged_into_the_base_gives_the_carried_logits(name):
  config, params = fx.load("gemma3")
  adapter = ADAPTERS[name]
  tree = _random_adapter_tree(config, adapter, seed=1)
  ref = fx.reference("gemma3")
  tokens, mask = ref["input_ids"], ref["attention_mask"].astype(bool)
  # Not jitted: tiny shapes run faster op by op than compiled per case.
  carried = np.asarray(DecoderOnly(config, adapter).apply(
      {"params": params, "adapters": tree}, tokens, input_mask=mask))
  merged_params = deltas.merge_into_base(params, tree, adapter)
  merged = np.asarray(DecoderOnly(config).apply(
      {"params": merged_params}, tokens, input_mask=mask))
  np.testing.assert_allclose(merged[mask], carried[mask], atol=1e-4, rtol=0)
  assert np.abs(carried - ref["logits"])[mask].max() > 0.1  # it adapts
  back = flatten_tree(deltas.unmerge_from_base(merged_params, tree, adapter))
  for path, value in flatten_tree(params).items():
    np.testing.assert_allclose(back[path], value, atol=1e-5, err_msg=path)


def test_manifest_binds_the_base_and_another_base_is_refused(tmp_path):
  config, params = fx.load("qwen2")
  other_config, other_params = fx.load("qwen3")
  fingerprint = base_model_fingerprint(config, params)
  assert fingerprint != base_model_fingerprint(other_config, other_params)
  adapter_config = ADAPTERS["lora"]
  tree = _random_adapter_tree(config, adapter_config, seed=2)
  manifest = AdapterManifest.for_tree(
      tree, adapter_config, base_model_fingerprint=fingerprint,
      base_model_name="qwen2_tiny", task="xlsum", language="en")
  adapter_io.save_adapter(str(tmp_path), tree, manifest)
  tree2, manifest2 = adapter_io.load_adapter(str(tmp_path))
  assert manifest2 == manifest
  for path, value in flatten_tree(tree).items():
    np.testing.assert_array_equal(flatten_tree(tree2)[path], value)
  adapter = Adapter(tree2, manifest2, "xlsum[en]")
  compat.check_base([adapter], fingerprint, "qwen2_tiny")
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match=r"xlsum\[en\] was trained on base model "
                           r"'qwen2_tiny' \(sha256:\w+\), not on qwen3_tiny"):
    compat.check_base([adapter], base_model_fingerprint(other_config,
                                                        other_params),
                      "qwen3_tiny")


PEFT_GIN = {"lora_r4.gin": "attention", "lora_r4_mlp.gin": "attention+mlp",
            "krona_32x16.gin": "attention"}


@pytest.mark.parametrize("gin_file", sorted(PEFT_GIN))
def test_peft_gin_files_choose_decoder_only_kernels(gin_file):
  """gin/peft/ serves both families: on a decoder-only tree its regexes
  choose q/k/v/o of every layer (and the MLP's gate/up/down)."""
  gin.clear_config()  # they bind AdapterConfig only, registered above
  try:
    gin.add_config_file_search_path(str(GIN_DIR))
    gin.parse_config_file(str(GIN_DIR / "peft" / gin_file))
    adapter = AdapterConfig()
  finally:
    gin.clear_config()
  config, _ = fx.load("llama")
  chosen = {p for p in param_shapes(config) if adapter.matches(p)}
  blocks = {"attention": ("attention/query", "attention/key",
                          "attention/value", "attention/out"),
            "mlp": ("mlp/wi_0", "mlp/wi_1", "mlp/wo")}
  want = {f"decoder/layers_{i}/{m}/kernel" for i in range(config.num_layers)
          for block in PEFT_GIN[gin_file].split("+") for m in blocks[block]}
  assert chosen == want


REAL_SIZES = sorted(p.name for p in (GIN_DIR / "models").glob("*.gin")
                    if not p.name.startswith(("mt5", "tiny")) and
                    "_tiny" not in p.name)


@pytest.mark.parametrize("model_file", REAL_SIZES)
def test_peft_gin_files_fit_the_real_decoder_only_sizes(model_file):
  """Every targeted kernel of each real-size model takes the adapter: the
  LoRA rank and the KronA (32, 16) factors divide (in, out) everywhere."""
  fits = 0
  for peft_file in sorted(PEFT_GIN):
    gin.clear_config()
    try:
      gin.add_config_file_search_path(str(GIN_DIR))
      gin.parse_config_files_and_bindings(
          [str(GIN_DIR / "models" / model_file),
           str(GIN_DIR / "peft" / peft_file)], [])
      config, adapter = DecoderConfig(), AdapterConfig()
    finally:
      gin.clear_config()
    for path, shape in param_shapes(config).items():
      if path.endswith("/kernel") and adapter.matches(path):
        fan_in, fan_out = shape
        if adapter.kind == "lora":
          layers.check_lora_rank(adapter.rank, fan_in, fan_out, path)
        else:
          layers.check_kron_factors(adapter.kron_factors, fan_in, fan_out,
                                    path)
        fits += 1
  assert fits == config.num_layers * (4 + 7 + 4)
