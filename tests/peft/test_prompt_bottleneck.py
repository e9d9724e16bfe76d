"""Prompt tuning and bottleneck adapters on the tiny mT5 fixture.

A PEFT prompt-tuning adapter (tests/fixtures/make_prompt_tuning_fixture.py)
imports with peft's logits and greedy generation, through lta's cached
decoder; lta's export is PEFT's format and reads back to the same tree.
Bottleneck adapters start as the identity and merge into nothing.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lta.adapters import deltas
from lta.adapters.config import AdapterConfig
from lta.adapters.tree import flatten_tree, unflatten_tree
from lta.checkpoints import hf
from lta.checkpoints import hf_peft
from lta.errors import CheckpointError
from lta.eval import scoring
from lta.models import families
from lta.models.contract import DecodingConfig
from tests.checkpoints import hf_fixtures as fx

TOL = 1e-4
PROMPT_FIXTURE = os.path.join(fx.FIXTURES, "prompt_tuning_tiny")


@pytest.fixture(scope="module")
def mt5():
  return hf.load_hf_checkpoint(fx.MT5)


@pytest.fixture(scope="module")
def imported(mt5):
  return hf_peft.import_peft_adapter(PROMPT_FIXTURE, mt5[0])


def test_peft_prompt_tuning_imports_with_peft_logits(mt5, imported):
  config, params = mt5
  adapter, tree = imported
  assert (adapter.kind, adapter.num_virtual_tokens) == ("prompt", 5)
  assert flatten_tree(tree)["encoder/prompt"].shape == (5, config.d_model)
  ref = fx.reference("prompt_tuning_tiny")
  enc, dec = ref["encoder_input_ids"], ref["decoder_input_ids"]
  assert (enc == 0).any()  # padded rows: the mask is extended, not replaced
  got = fx.lta_logits(config, params, enc, dec, adapter, tree)
  np.testing.assert_allclose(got, ref["logits"], atol=TOL, rtol=0)
  base = fx.lta_logits(config, params, enc, dec)
  assert np.abs(got - base).max() > 1.0  # the prompt matters


def test_cached_greedy_with_the_prompt_equals_peft_generate(mt5, imported):
  config, params = mt5
  adapter, tree = imported
  ref = fx.reference("prompt_tuning_tiny")
  want = ref["generated_ids"][:, 1:]  # generate's rows start with the start id
  predict = scoring.make_predict_fn(families.build_model(config, adapter),
                                    DecodingConfig(max_decode_length=8))
  got = np.asarray(predict({"params": params, "adapters": tree}, {
      "encoder_input_tokens": ref["encoder_input_ids"].astype(np.int32)}))
  np.testing.assert_array_equal(got, want)


def test_export_is_peft_prompt_tuning_and_round_trips(tmp_path, mt5,
                                                      imported):
  config, _ = mt5
  adapter, tree = imported
  hf_peft.export_peft_adapter(tree, adapter, config, str(tmp_path),
                              base_model_name_or_path="mt5_tiny")
  written = json.load(open(tmp_path / hf_peft.CONFIG_FILE))
  peft_file = json.load(open(os.path.join(PROMPT_FIXTURE,
                                          hf_peft.CONFIG_FILE)))
  for field in ("peft_type", "task_type", "num_virtual_tokens", "token_dim",
                "num_transformer_submodules", "num_attention_heads",
                "num_layers", "base_model_name_or_path"):
    assert written[field] == peft_file[field], field
  table = load_file(str(tmp_path / hf_peft.WEIGHTS_FILE))["prompt_embeddings"]
  peft_table = load_file(os.path.join(PROMPT_FIXTURE, hf_peft.WEIGHTS_FILE))[
      "prompt_embeddings"]
  assert table.shape == peft_table.shape == (10, config.d_model)
  np.testing.assert_array_equal(table[:5], peft_table[:5])
  assert not table[5:].any()  # the decoder half, which prompt tuning ignores
  again, again_tree = hf_peft.import_peft_adapter(str(tmp_path), config)
  assert again == adapter
  np.testing.assert_array_equal(flatten_tree(again_tree)["encoder/prompt"],
                                flatten_tree(tree)["encoder/prompt"])


def test_a_bottleneck_adapter_is_refused_where_it_has_no_meaning(mt5):
  # Prompts and bottlenecks on decoder-only and mBART / NLLB bases, and
  # what they still refuse there: tests/peft/test_added_layers_families.py.
  config, _ = mt5
  with pytest.raises(ValueError, match="no bottleneck-adapter type"):
    hf_peft.export_peft_adapter({}, AdapterConfig(kind="bottleneck"), config,
                                "unused")


@pytest.mark.parametrize("placement", ["houlsby", "pfeiffer"])
def test_bottleneck_starts_as_the_identity_and_merges_into_nothing(
    mt5, placement):
  config, params = mt5
  adapter = AdapterConfig(kind="bottleneck", bottleneck_width=4,
                          bottleneck_placement=placement)
  fresh = jax.jit(families.build_model(config, adapter).init_unboxed)(
      jax.random.PRNGKey(0))["adapters"]
  modules = deltas.adapter_modules(fresh)
  sublayers = {m.rsplit("/", 1)[1] for m in modules}
  assert sublayers == ({"attention_adapter", "self_attention_adapter",
                        "mlp_adapter"} if placement == "houlsby" else
                       {"mlp_adapter"})
  layers = config.num_encoder_layers + config.num_decoder_layers
  assert len(modules) == (2 if placement == "houlsby" else 1) * layers
  ref = fx.reference("mt5_tiny")
  enc, dec = ref["encoder_input_ids"], ref["decoder_input_ids"]
  base = fx.lta_logits(config, params, enc, dec)
  np.testing.assert_array_equal(
      fx.lta_logits(config, params, enc, dec, adapter, fresh), base)
  merged = deltas.merge_into_base(params, fresh, adapter)
  fx.assert_same_params(merged, params)
  # Not vacuous: a trained up-projection moves the logits.
  rng = np.random.default_rng(0)
  trained = {p: (rng.normal(size=v.shape).astype(np.float32)
                 if "/up_" in p else v) for p, v in flatten_tree(fresh).items()}
  moved = fx.lta_logits(config, params, enc, dec, adapter,
                        unflatten_tree(trained))
  assert np.abs(moved - base).max() > 1e-2


def _damaged_copy(tmp_path, config_edit=None, weights=None):
  out = tmp_path / "damaged"
  shutil.copytree(PROMPT_FIXTURE, out)
  if config_edit:
    cfg = json.load(open(out / hf_peft.CONFIG_FILE))
    cfg.update(config_edit)
    json.dump(cfg, open(out / hf_peft.CONFIG_FILE, "w"))
  if weights is not None:
    save_file(weights, str(out / hf_peft.WEIGHTS_FILE))
  return str(out)


@pytest.mark.parametrize("config_edit,weights,message", [
    ({"num_virtual_tokens": 4}, None,
     r"prompt_embeddings has shape \[10, 32\]; .* gives \[8, 32\]"),
    ({"token_dim": 16}, None, r"has shape \[10, 32\]; .* gives \[10, 16\]"),
    ({"num_virtual_tokens": 0}, None, "num_virtual_tokens=0; expected a "
     "positive integer"),
    (None, {"prompt_embeddings": np.zeros((10, 32), np.float32),
            "extra": np.zeros((1,), np.float32)},
     "holds only 'prompt_embeddings', got \\['extra', 'prompt_embeddings'\\]"),
    ({"task_type": "CAUSAL_LM"}, None, "task_type='CAUSAL_LM', but the base "
     "model is mt5"),
], ids=["length", "token_dim", "zero_length", "extra_tensor", "task_type"])
def test_a_damaged_prompt_tuning_file_is_refused_in_one_line(
    tmp_path, mt5, config_edit, weights, message):
  directory = _damaged_copy(tmp_path, config_edit, weights)
  with pytest.raises(CheckpointError, match=message) as e:
    hf_peft.import_peft_adapter(directory, mt5[0])
  assert "\n" not in str(e.value)


def test_a_prompt_for_another_width_is_refused(tmp_path, mt5):
  table = np.zeros((10, 16), np.float32)
  directory = _damaged_copy(tmp_path, {"token_dim": 16},
                            {"prompt_embeddings": table})
  with pytest.raises(CheckpointError, match="token_dim=16, but "
                     "mt5_tiny has d_model=32"):
    hf_peft.import_peft_adapter(directory, mt5[0])
