"""HF PEFT LoRA adapters on the decoder-only families (issue 16).

For Llama, Qwen2, Qwen3, Gemma 2 and Gemma 3 (text): a LoRA made with
`peft` (tests/fixtures/make_decoder_peft_fixtures.py; q/k/v/o, and the MLP
too for Qwen2 and Gemma 3) imports into lta's decoder tree with logits
within 1e-4 of peft's, both carried by the network's Projection layers and
merged into the base kernels; lta's export writes the files peft wrote and
re-imports exactly. That peft loads lta's export to lta's logits is checked
with torch by tests/fixtures/check_peft_export.py (see its docstring).
"""

import json
import os

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

from lta import api
from lta.adapters import deltas
from lta.adapters.config import ATTENTION_TARGETS, MLP_TARGETS, AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.adapters.tree import flatten_tree
from lta.arithmetic import compat
from lta.arithmetic import compositions
from lta.checkpoints.fingerprint import base_model_fingerprint
from lta.checkpoints import hf_peft
from lta.errors import CheckpointError
from lta.models.decoder.network import DecoderOnly
from lta.models.mt5.config import T5Config
from tests.model import decoder_fixtures as fx

TOLERANCE = 1e-4  # float32 parity with peft (issue 16)
WITH_MLP = ("qwen2", "gemma3")


def _adapter_dir(family):
  return os.path.join(fx.DECODER, f"{family}_lora_tiny")


def _reference(family):
  return dict(np.load(os.path.join(fx.DECODER,
                                   f"{family}_lora_tiny.reference.npz")))


def _imported(family):
  config, _ = fx.load(family)
  return hf_peft.import_peft_adapter(_adapter_dir(family), config)


@pytest.mark.parametrize("family", fx.FAMILIES)
def test_peft_lora_imports_with_peft_logits(family):
  config, params = fx.load(family)
  adapter, tree = _imported(family)
  want_targets = (f"(?:{ATTENTION_TARGETS})|(?:{MLP_TARGETS})"
                  if family in WITH_MLP else ATTENTION_TARGETS)
  assert adapter.targets == want_targets  # lta's own regexes: composable
  assert (adapter.kind, adapter.rank, adapter.scale) == ("lora", 4, 2.0)
  ref = _reference(family)
  mask = ref["attention_mask"].astype(bool)
  # Not jitted: tiny shapes run faster op by op than compiled per family.
  carried = DecoderOnly(config, adapter).apply(
      {"params": params, "adapters": tree}, ref["input_ids"], input_mask=mask)
  np.testing.assert_allclose(np.asarray(carried)[mask], ref["logits"][mask],
                             atol=TOLERANCE, rtol=0)
  merged_params = deltas.merge_into_base(params, tree, adapter)
  merged = DecoderOnly(config).apply({"params": merged_params},
                                     ref["input_ids"], input_mask=mask)
  np.testing.assert_allclose(np.asarray(merged)[mask], ref["logits"][mask],
                             atol=TOLERANCE, rtol=0)
  # The adapter matters, and unmerging gives the base back.
  base = fx.reference(family)["logits"]
  assert np.abs(ref["logits"] - base)[mask].max() > 0.5
  unmerged = flatten_tree(deltas.unmerge_from_base(merged_params, tree,
                                                   adapter))
  for path, value in flatten_tree(params).items():
    np.testing.assert_allclose(unmerged[path], value, atol=1e-5, err_msg=path)


@pytest.mark.parametrize("family", fx.FAMILIES)
def test_export_writes_peft_files_and_round_trips(tmp_path, family):
  config, _ = fx.load(family)
  adapter, tree = _imported(family)
  hf_peft.export_peft_adapter(tree, adapter, config, str(tmp_path),
                              base_model_name_or_path=f"{family}_tiny")
  ours = load_file(str(tmp_path / hf_peft.WEIGHTS_FILE))
  theirs = load_file(os.path.join(_adapter_dir(family), hf_peft.WEIGHTS_FILE))
  assert sorted(ours) == sorted(theirs)
  for key, value in theirs.items():
    np.testing.assert_array_equal(ours[key], value, err_msg=key)
  with open(tmp_path / hf_peft.CONFIG_FILE) as f:
    cfg = json.load(f)
  with open(os.path.join(_adapter_dir(family), hf_peft.CONFIG_FILE)) as f:
    peft_cfg = json.load(f)
  # Every field lta writes has peft's value (the rest are peft's defaults).
  for field in ("peft_type", "task_type", "r", "lora_alpha", "use_rslora",
                "lora_dropout", "bias", "fan_in_fan_out", "use_dora",
                "base_model_name_or_path", "layers_to_transform",
                "modules_to_save", "rank_pattern", "alpha_pattern"):
    assert cfg[field] == peft_cfg[field], field
  assert sorted(cfg["target_modules"]) == sorted(peft_cfg["target_modules"])
  assert cfg["task_type"] == "CAUSAL_LM"  # peft: PeftModelForCausalLM
  adapter2, tree2 = hf_peft.import_peft_adapter(str(tmp_path), config)
  assert adapter2 == adapter
  flat, flat2 = flatten_tree(tree), flatten_tree(tree2)
  assert sorted(flat) == sorted(flat2)
  for path, value in flat.items():
    np.testing.assert_array_equal(flat2[path], value, err_msg=path)


def test_family_mismatches_are_named():
  llama, _ = fx.load("llama")
  with pytest.raises(CheckpointError, match=r"llama_lora_tiny/adapter_config"
                     r".json: task_type='CAUSAL_LM', but the base model is "
                     r"mt5 \('SEQ_2_SEQ_LM'\)"):
    hf_peft.import_peft_adapter(_adapter_dir("llama"), T5Config())
  mt5_dir = os.path.join(os.path.dirname(fx.DECODER), "lora_tiny")
  with pytest.raises(CheckpointError, match=r"lora_tiny/adapter_model."
                     r"safetensors: .* adapts module 'decoder.block.0.layer.0"
                     r".SelfAttention.\w', which has no lta counterpart in "
                     r"llama"):
    hf_peft.import_peft_adapter(mt5_dir, llama)
  # A Llama adapter on a base of other shapes: the kernel and both shapes.
  gemma_config, _ = fx.load("gemma2")
  narrower = gemma_config.replace(num_kv_heads=1, num_heads=2)
  with pytest.raises(CheckpointError, match=r"adapter of decoder/layers_0/"
                     r"attention/\w+/kernel gives dW \(\d+, \d+\); the kernel "
                     r"is \(\d+, \d+\)"):
    hf_peft.import_peft_adapter(_adapter_dir("llama"), narrower)


def test_the_api_imports_merges_and_exports_on_a_decoder_base(tmp_path):
  """lta.api, as a user calls it: a PEFT LoRA on an HF Qwen2 base."""
  base = api.load_base(fx.checkpoint("qwen2"))
  adapter = api.load_adapter(_adapter_dir("qwen2"), base, task="xlsum",
                             language="en")
  assert adapter.manifest.base_model_fingerprint == base.fingerprint
  merged = api.merge(base, adapter)
  ref = _reference("qwen2")
  mask = ref["attention_mask"].astype(bool)
  logits = DecoderOnly(base.config).apply(
      {"params": merged.params}, ref["input_ids"], input_mask=mask)
  np.testing.assert_allclose(np.asarray(logits)[mask], ref["logits"][mask],
                             atol=TOLERANCE, rtol=0)
  api.export_peft(adapter, str(tmp_path), base)
  again = api.load_adapter(str(tmp_path), base)
  assert again.config == adapter.config
  for path, value in flatten_tree(adapter.tree).items():
    np.testing.assert_array_equal(flatten_tree(again.tree)[path], value)
  llama = api.load_base(fx.checkpoint("llama"))
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match=r"was trained on base model .*, not on "
                           r".*llama_tiny"):
    api.merge(llama, adapter)


def test_an_imported_adapter_composes_with_one_lta_made():
  """Eq. 1 (factor space) on real decoder-only trees: a peft-made task
  vector and an lta language vector with lta's default targets (the
  import's regex is lta's own), merged into the Llama base's kernels."""
  config, params = fx.load("llama")
  fingerprint = base_model_fingerprint(config, params)
  peft_config, peft_tree = _imported("llama")
  task = Adapter(peft_tree, AdapterManifest.for_tree(
      peft_tree, peft_config, base_model_fingerprint=fingerprint,
      base_model_name="llama_tiny", task="xlsum", language="en"), "peft")
  own = AdapterConfig(kind="lora", rank=4, alpha=8.0)  # gin/peft defaults
  assert own.targets == peft_config.targets and own.scale == peft_config.scale
  rng = np.random.default_rng(0)
  lang_tree = jax.tree.map(
      lambda x: rng.normal(size=x.shape).astype(np.float32), peft_tree)
  lang = Adapter(lang_tree, AdapterManifest.for_tree(
      lang_tree, own, base_model_fingerprint=fingerprint,
      base_model_name="llama_tiny", task="mc4_prefix_lm", language="pt"))
  composed = compositions.compose(
      "lang_task_add", task_vectors={"en": task}, language_vectors={"pt": lang},
      target="pt", sources="en", lam=0.7)
  flat = flatten_tree(composed.tree)
  for path, value in flatten_tree(peft_tree).items():
    np.testing.assert_allclose(
        flat[path], 0.7 * value + 0.3 * flatten_tree(lang_tree)[path],
        rtol=1e-5, atol=1e-6)
  merged = deltas.merge_into_base(params, composed.tree, composed.config)
  assert sorted(flatten_tree(merged)) == sorted(flatten_tree(params))
