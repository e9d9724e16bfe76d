"""lta.api on the shipped tiny fixtures; docs/api.md's blocks run too."""

import dataclasses
import os
import re

import jax
import numpy as np
import pytest

from lta import api
from lta.arithmetic import compat
from lta import errors
from lta.checkpoints import hf
from lta.data import decoder_only
from lta.models import families
from lta.models.contract import DecodingConfig
from tests.fixtures import make_t5x_fixture

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF = os.path.join(REPO, "tests", "fixtures", "hf")
MT5 = os.path.join(HF, "mt5_tiny")
VOCAB = os.path.join(REPO, "tests", "fixtures", "spm", "tiny_en_ru.model")
# Ten texts: two batches of the default 8. Decoding settings and the
# longest input match docs/api.md's, so its test reuses these compilations.
TEXTS = ["summarize: Heavy rain flooded the old market on Monday.",
         "summarize: Река течёт через долину.",
         "summarize: A new bridge opened.", "Река течёт через долину.",
         "summarize: The council met.", "rain", "", "summarize: old market",
         "Весной вода поднимается.", "summarize: traders moved their goods"]
GREEDY = dict(max_length=16)
BEAM = dict(max_length=16, method="beam", beam_size=4, alpha=0.6)
SAMPLE = dict(max_length=16, method="sample", temperature=0.8, topk=20)


@pytest.fixture(scope="module")
def model():
  return api.load_base(MT5)


@pytest.fixture(scope="module")
def lora(model):
  return api.load_adapter(os.path.join(HF, "lora_tiny"), model,
                          task="xlsum", language="en")


def _leaves(tree):
  return jax.tree.leaves(jax.tree.map(np.asarray, tree))


def test_t5x_base_needs_its_config_and_equals_the_hf_one(model, tmp_path):
  ckpt = make_t5x_fixture.write_t5x(model.params, str(tmp_path), step=3)
  with pytest.raises(errors.ConfigError, match="does not record its architecture"):
    api.load_base(ckpt)
  t5x = api.load_base(ckpt, config=model.config)
  assert t5x.fingerprint == model.fingerprint
  with pytest.raises(errors.MissingFileError, match="does not exist"):
    api.load_base(str(tmp_path / "nope"))


def test_adapters_load_from_both_formats(model, lora, tmp_path):
  assert lora.config.kind == "lora" and lora.manifest.task == "xlsum"
  assert lora.manifest.base_model_fingerprint == model.fingerprint
  with pytest.raises(errors.ConfigError, match="pass the base model"):
    api.load_adapter(os.path.join(HF, "lora_tiny"))
  with pytest.raises(errors.MissingFileError, match="neither an lta adapter"):
    api.load_adapter(str(tmp_path))
  saved = api.save_adapter(lora, str(tmp_path / "lta"))
  again = api.load_adapter(saved)
  assert again.manifest == lora.manifest
  for a, b in zip(_leaves(lora.tree), _leaves(again.tree)):
    np.testing.assert_array_equal(a, b)


def test_peft_export_round_trips(model, lora, tmp_path):
  out = api.export_peft(lora, str(tmp_path / "peft"), model)
  back = api.load_adapter(out, model, task="xlsum", language="en")
  assert back.config == lora.config
  for a, b in zip(_leaves(lora.tree), _leaves(back.tree)):
    np.testing.assert_allclose(a, b, rtol=0, atol=0)
  other = dataclasses.replace(model, fingerprint="sha256:another-base")
  with pytest.raises(compat.IncompatibleAdaptersError):
    api.export_peft(lora, str(tmp_path / "refused"), other)


def test_generate_is_the_same_in_any_batching(model, lora):
  merged = api.merge(model, lora)
  assert merged.merged == (lora.label,) and merged.fingerprint == (
      model.fingerprint)
  out = api.generate(merged, TEXTS, VOCAB, **GREEDY)
  assert len(out) == len(TEXTS) and all(isinstance(t, str) for t in out)
  # Other neighbours, batches and padding rows: the same text per input.
  order = [3, 9, 0, 7, 1, 8, 2, 6, 4, 5]
  shuffled = api.generate(merged, [TEXTS[i] for i in order], VOCAB, **GREEDY)
  assert shuffled == [out[i] for i in order]
  # The adapter changes what the model says.
  assert out != api.generate(model, TEXTS, VOCAB, **GREEDY)
  assert len(api.generate(merged, TEXTS[:2], VOCAB, **BEAM)) == 2
  sampled = [api.generate(merged, TEXTS[:2], VOCAB, seed=seed, **SAMPLE)
             for seed in (0, 0, 1)]
  assert sampled[0] == sampled[1] != sampled[2]


def test_generate_refuses_what_cannot_be_right(model, lora):
  with pytest.raises(errors.ConfigError, match="one string"):
    api.generate(model, "summarize: x", VOCAB)
  small = dataclasses.replace(model, config=model.config.replace(
      vocab_size=64))
  with pytest.raises(errors.ConfigError, match="embeds only 64"):
    api.generate(small, TEXTS, VOCAB)
  with pytest.raises(errors.MissingFileError, match="nope.model"):
    api.generate(model, TEXTS, "nope.model")
  other = dataclasses.replace(model, fingerprint="sha256:another-base")
  with pytest.raises(compat.IncompatibleAdaptersError):
    api.merge(other, lora)


def test_docs_api_md_runs(monkeypatch):
  """Every python block of docs/api.md, in order, as a reader runs them."""
  with open(os.path.join(REPO, "docs", "api.md"), encoding="utf-8") as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert len(blocks) >= 5
  monkeypatch.chdir(REPO)
  namespace = {}
  for i, block in enumerate(blocks):
    code = compile(block, f"docs/api.md block {i + 1}", "exec")
    exec(code, namespace)  # pylint: disable=exec-used
  assert namespace["adapter"].manifest.provenance["composition"] == (
      "lang_task_add_subtract")
  peft_dir = namespace["peft_dir"]
  assert sorted(os.listdir(peft_dir)) == ["adapter_config.json",
                                          "adapter_model.safetensors"]
  config, _ = hf.load_hf_checkpoint(MT5)
  assert namespace["model"].config == config


LLAMA = os.path.join(HF, "decoder", "llama_tiny")
ARTICLES = ["Heavy rain flooded the old market on Monday.",
            "Река течёт через долину.", "A new bridge opened.",
            "The council met."]


def test_generate_on_a_decoder_only_model_fills_the_prompt_and_left_pads():
  llm = api.load_base(LLAMA)
  assert llm.config.family == "llama"
  vocabulary = api.load_vocabulary(VOCAB)
  options = dict(max_length=8, batch_size=2)
  got = api.generate(llm, ARTICLES, vocabulary, prompt="xlsum", **options)
  # By hand: the xlsum template, the start token and left padding
  # (prompt_batch), then the cached decoder; the prompts differ in length.
  model = families.build_model(llm.config)
  rows = [vocabulary.encode(decoder_only.PROMPTS["xlsum"].format({"text": a}))
          for a in ARTICLES]
  assert len({len(r) for r in rows}) == len(rows)
  batch = model.prompt_batch(rows, max(len(r) for r in rows))
  ids = jax.jit(lambda v, b: model.predict_batch(
      v, b, DecodingConfig(max_decode_length=8)))(llm.variables, batch)
  assert got == [vocabulary.decode([int(t) for t in row]) for row in ids]
  assert len(set(got)) > 1
  # The template matters, and batching does not.
  assert api.generate(llm, ARTICLES, vocabulary, **options) != got
  assert api.generate(llm, ARTICLES[::-1], vocabulary, prompt="xlsum",
                      **options) == got[::-1]


def test_generate_refuses_prompts_it_cannot_fill():
  llm = api.load_base(LLAMA)
  with pytest.raises(errors.ConfigError, match="did you mean 'xlsum'"):
    api.generate(llm, ARTICLES, VOCAB, prompt="xsum")
  with pytest.raises(errors.ConfigError, match=r"\['context', 'question'\]"):
    api.generate(llm, ARTICLES, VOCAB, prompt="tydiqa_goldp")
  with pytest.raises(errors.ConfigError, match="needs field"):
    api.generate(llm, [{"context": "x"}], VOCAB, prompt="tydiqa_goldp")
  with pytest.raises(errors.ConfigError, match="without a prompt template"):
    api.generate(llm, [{"text": "x"}], VOCAB)


# ------------------------------------------------------------ mBART --


@pytest.fixture(scope="module")
def mbart(tmp_path_factory):
  """A random tiny mBART saved as an HF checkpoint, and a fairseq-id
  vocabulary with three mBART-50 codes (made as the data tests make it)."""
  from lta.checkpoints import base_model  # pylint: disable=g-import-not-at-top
  from lta.data import vocab  # pylint: disable=g-import-not-at-top
  from lta.models.bart.config import BartConfig  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("mbart")
  spm = vocab.train_tiny_sentencepiece(
      TEXTS * 4, str(root / "fairseq"), 400, fairseq_ids=True,
      control_symbols=["en_XX", "ar_AR", "ru_RU"])
  vocabulary = api.load_vocabulary(spm)
  config = BartConfig(model_type="mbart", vocab_size=vocabulary.vocab_size,
                      d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                      num_decoder_layers=1, max_position_embeddings=64,
                      name="mbart-api-tiny")
  params = jax.jit(families.build_model(config).init_unboxed)(
      jax.random.PRNGKey(0))["params"]
  base_model.save_base_model(params, config, str(root / "base"))
  return api.load_base(str(root / "base")), vocabulary


def test_generate_on_mbart_reads_and_forces_the_language_codes(mbart):
  model, vocabulary = mbart
  assert model.config.model_type == "mbart"  # the HF directory's config
  texts = [t for t in TEXTS if t][:3]
  # One target: a forced id is part of the compiled decoder.
  ids = api.generate(model, texts, vocabulary, max_length=4,
                     source_language="en", target_language="ru",
                     return_ids=True)
  assert [int(row[0]) for row in ids] == [
      vocabulary.tokenizer.piece_to_id("ru_RU")] * 3
  text = api.generate(model, texts[:1], vocabulary, max_length=4,
                      source_language="en", target_language="ru")
  assert text == [vocabulary.decode([int(t) for t in ids[0]])]
  assert "ru_RU" not in text[0]  # a control piece: decoding drops it


def test_generate_on_mbart_names_what_is_missing(mbart):
  model, vocabulary = mbart
  with pytest.raises(errors.ConfigError, match=(
      "reads the source's language code and writes the target's: pass "
      "target_language")):
    api.generate(model, ["rain"], vocabulary, source_language="en")
  with pytest.raises(errors.DataError, match="has no piece 'pt_XX'"):
    api.generate(model, ["rain"], vocabulary, source_language="en",
                 target_language="pt")
  with pytest.raises(errors.DataError,
                     match="mbart50 has no language code for 'am'"):
    api.generate(model, ["rain"], vocabulary, source_language="am",
                 target_language="ru")


def test_generate_on_mt5_refuses_language_codes(model):
  with pytest.raises(errors.ConfigError, match="reads no language codes"):
    api.generate(model, ["rain"], VOCAB, target_language="pt")
