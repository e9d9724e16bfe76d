"""HF PEFT prompt tuning (CAUSAL_LM) on the decoder-only families.

A prompt made with `peft` on tiny Llama, Qwen2 and Gemma 2 checkpoints
(tests/fixtures/make_decoder_prompt_tuning_fixtures.py) imports as lta's
'decoder/prompt' with peft's logits within 1e-4, and lta's cached decoder
(predict_batch: the prompt goes in at the prefill) generates what peft's
generate does; lta's export writes peft's files back.
"""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from lta.adapters.tree import flatten_tree
from lta.checkpoints import hf_peft
from lta.errors import CheckpointError
from lta.eval import scoring
from lta.models import families
from lta.models.bart.config import BartConfig
from lta.models.contract import DecodingConfig
from lta.models.decoder.network import DecoderOnly
from tests.model import decoder_fixtures as fx

TOLERANCE = 1e-4  # float32 parity with peft
# Qwen2 (q/k/v biases, untied head) takes the same prompt path as Llama;
# Gemma 2 scales the prompt with the embeddings, as HF does.
FAMILIES = ["llama", pytest.param("qwen2", marks=pytest.mark.slow),
            pytest.param("gemma2", marks=pytest.mark.slow)]


def _name(family):
  return os.path.join(fx.DECODER, f"{family}_prompt_tuning_tiny")


@pytest.mark.parametrize("family", FAMILIES)
def test_peft_prompt_tuning_imports_with_peft_logits_and_generation(family):
  config, params = fx.load(family)
  adapter, tree = hf_peft.import_peft_adapter(_name(family), config)
  assert (adapter.kind, adapter.num_virtual_tokens) == ("prompt", 4)
  assert {p: v.shape for p, v in flatten_tree(tree).items()} == {
      "decoder/prompt": (4, config.hidden_size)}
  ref = dict(np.load(_name(family) + ".reference.npz"))
  mask = ref["attention_mask"].astype(bool)
  variables = {"params": params, "adapters": tree}
  # Not jitted: tiny shapes run faster op by op than compiled.
  got = np.asarray(DecoderOnly(config, adapter).apply(
      variables, ref["input_ids"], input_mask=mask))
  np.testing.assert_allclose(got[mask], ref["logits"][mask], atol=TOLERANCE,
                             rtol=0)
  model = families.build_model(config, adapter)
  predict = scoring.make_predict_fn(model, DecodingConfig(
      max_decode_length=ref["generated_ids"].shape[1]))
  prompt = ref["prompt_ids"].astype(np.int32)
  ids = np.asarray(predict(variables, {
      "prompt_tokens": prompt, "prompt_mask": np.ones(prompt.shape, bool)}))
  np.testing.assert_array_equal(ids, ref["generated_ids"])


def test_export_is_peft_causal_lm_prompt_tuning_and_round_trips(tmp_path):
  config, _ = fx.load("llama")
  adapter, tree = hf_peft.import_peft_adapter(_name("llama"), config)
  hf_peft.export_peft_adapter(tree, adapter, config, str(tmp_path),
                              base_model_name_or_path="llama_tiny")
  written = json.load(open(tmp_path / hf_peft.CONFIG_FILE))
  peft_file = json.load(open(os.path.join(_name("llama"),
                                          hf_peft.CONFIG_FILE)))
  for field in ("peft_type", "task_type", "num_virtual_tokens", "token_dim",
                "num_transformer_submodules", "num_attention_heads",
                "num_layers", "base_model_name_or_path"):
    assert written[field] == peft_file[field], field
  np.testing.assert_array_equal(
      load_file(str(tmp_path / hf_peft.WEIGHTS_FILE))["prompt_embeddings"],
      load_file(os.path.join(_name("llama"), hf_peft.WEIGHTS_FILE))[
          "prompt_embeddings"])
  again, again_tree = hf_peft.import_peft_adapter(str(tmp_path), config)
  assert again == adapter
  np.testing.assert_array_equal(flatten_tree(again_tree)["decoder/prompt"],
                                flatten_tree(tree)["decoder/prompt"])


def test_peft_files_on_a_bart_base_are_refused_in_one_line():
  bart = BartConfig(vocab_size=64, d_model=16, num_heads=2, d_ff=32,
                    num_encoder_layers=1, num_decoder_layers=1,
                    name="nllb-t")
  with pytest.raises(CheckpointError, match="nllb-t .m2m_100. adapters stay "
                     "in lta's format") as e:
    hf_peft.import_peft_adapter(_name("llama"), bart)
  assert "\n" not in str(e.value)
