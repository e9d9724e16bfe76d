"""mBART-50 and NLLB-200 in the data path and the jobs, on tiny data.

A tiny fairseq-id SentencePiece vocabulary (bos 0, pad 1, eos 2, unk 3,
the language codes as control pieces) made here; XQuAD / XL-Sum fixture
data in the real TFDS format; a random tiny mBART and NLLB saved as HF
checkpoints, trained (LoRA) by `lta train`'s loop and scored by `lta
eval`'s job, both choosing the family from the BartConfig.
"""

import gzip
import json

import jax
import numpy as np
import pytest
import seqio

from lta.adapters.config import AdapterConfig
from lta.checkpoints import base_model
from lta.data import input_pipeline
from lta.data import language_codes
from lta.data import vocab
from lta.jobs import evaluate
from lta.models import families
from lta.models.bart.config import BartConfig
from lta.train import loop
from lta.train import optimizers
from lta_tasks import xquad
from tests.tasks import conftest

LENGTHS = {"inputs": 96, "targets": 16}
CODES = {"mbart50": ("en_XX", "ar_AR"), "nllb200": ("eng_Latn", "arb_Arab")}


@pytest.fixture(scope="module")
def fairseq_spm(tmp_path_factory):
  texts = conftest.fixture_texts()
  for path in sorted((conftest.FIXTURES / "xquad").glob("*.json")):
    for article in json.loads(path.read_text("utf-8"))["data"]:
      for paragraph in article["paragraphs"]:
        texts += [paragraph["context"]] + [q["question"]
                                           for q in paragraph["qas"]]
  codes = [c for pair in CODES.values() for c in pair]
  return vocab.train_tiny_sentencepiece(
      texts, str(tmp_path_factory.mktemp("spm") / "fairseq"), 600,
      fairseq_ids=True, control_symbols=codes)


@pytest.fixture
def data(tfds_dir, fairseq_spm):
  xquad.prepare(tfds_dir, str(conftest.FIXTURES / "xquad"), ["en"])
  with vocab.use_vocabulary(fairseq_spm) as vocabulary:
    yield vocabulary


def _first_batch(task, split, **options):
  ds = input_pipeline.get_dataset(task, LENGTHS, 1, split=split,
                                  shuffle=False, num_epochs=1, shard=(0, 1),
                                  **options)
  return next(input_pipeline.numpy_batches(ds))


@pytest.mark.parametrize("scheme", ["mbart50", "nllb200"])
def test_codes_lead_inputs_and_labels_and_padding_is_one(data, scheme):
  code_en, code_ar = (data.tokenizer.piece_to_id(c) for c in CODES[scheme])
  assert min(code_en, code_ar) > 3 and data.encode(CODES[scheme][0]) != [
      code_en]  # text never encodes to a code
  options = dict(architecture="encoder_decoder", bos_id=2, pad_id=1,
                 language_scheme=scheme)
  for task, split, code in (("xquad.en", "train", code_en),
                            ("xlsum.ar", "validation", code_ar)):
    batch = _first_batch(task, split, **options)
    enc, dec_in = batch["encoder_input_tokens"], batch["decoder_input_tokens"]
    targets, weights = (batch["decoder_target_tokens"],
                        batch["decoder_loss_weights"])
    assert (enc[:, 0] == code).all() and (targets[:, 0] == code).all()
    assert (dec_in[:, 0] == 2).all() and (dec_in[:, 1] == code).all()
    assert not (enc == 0).any() and not (targets == 0).any()
    for row in range(len(enc)):  # one EOS, then pad 1 with no loss
      n = int(weights[row].sum())
      assert targets[row, n - 1] == 2 and (targets[row, n:] == 1).all()
      assert (dec_in[row, n + 1:] == 1).all()
      assert weights[row, :n].all() and not weights[row, n:].any()
      assert enc[row, -1] in (1, 2)
    # The same task for mT5: no code, seqio's pad 0.
    plain = _first_batch(task, split)
    assert plain["encoder_input_tokens"][0, 0] != code


def _contains(document, piece):
  return any(document[i:i + len(piece)] == piece
             for i in range(len(document) - len(piece) + 1))


@pytest.mark.parametrize("scheme", ["mbart50", "nllb200"])
def test_language_vector_text_carries_the_code_and_loses_none(data, scheme):
  """mc4_prefix_lm: the code leads inputs and targets, and between code and
  EOS they are one contiguous piece of an mC4 document: the code took the
  room of no text token."""
  code_en = data.tokenizer.piece_to_id(CODES[scheme][0])
  documents = []
  for path in sorted((conftest.FIXTURES / "mc4").glob(
      "c4-en.tfrecord-*.json.gz")):
    with gzip.open(path, "rt", encoding="utf-8") as f:
      documents += [data.encode(json.loads(line)["text"]) for line in f]
  lengths = {"inputs": 8, "targets": 16}  # short: documents make segments
  ds = input_pipeline.get_dataset(
      "mc4_prefix_lm.en", lengths, 4, split="train", shuffle=False,
      num_epochs=1, shard=(0, 1), architecture="encoder_decoder", bos_id=2,
      pad_id=1, language_scheme=scheme)
  rows = 0
  for batch in input_pipeline.numpy_batches(ds):
    for enc, targets in zip(batch["encoder_input_tokens"],
                            batch["decoder_target_tokens"]):
      assert enc[0] == code_en and targets[0] == code_en
      enc, targets = list(enc[enc != 1]), list(targets[targets != 1])
      assert enc[-1] == 2 and targets[-1] == 2  # EOS after the text
      assert len(enc) <= lengths["inputs"]
      text = [int(t) for t in enc[1:-1] + targets[1:-1]]
      assert any(_contains(d, text) for d in documents), text
      rows += 1
  assert rows >= 4


def test_a_language_the_model_lacks_is_named(data):
  with pytest.raises(ValueError, match="mbart50 has no language code for 'am'"):
    with language_codes.use_scheme("mbart50"):
      language_codes.forced_first_id(data, "am")
  with pytest.raises(ValueError, match="has no piece 'es_XX'"):
    with language_codes.use_scheme("mbart50"):
      language_codes.forced_first_id(data, "es")


def _tiny(model_type, rows):
  return BartConfig(model_type=model_type, vocab_size=rows, d_model=16,
                    num_heads=2, d_ff=32, num_encoder_layers=1,
                    num_decoder_layers=1, max_position_embeddings=128,
                    activation="gelu" if model_type == "mbart" else "relu",
                    dropout_rate=0.0, attention_dropout_rate=0.0,
                    name=f"{model_type}-tiny")


# NLLB's run is slow-tier: the default tier keeps mBART's, and NLLB's codes
# and padding (test_codes_lead_...) and network parity (test_hf_bart).
@pytest.mark.parametrize("model_type, scheme", [
    ("mbart", "mbart50"),
    pytest.param("m2m_100", "nllb200", marks=pytest.mark.slow)])
def test_train_then_eval_a_tiny_model(data, tmp_path, model_type, scheme):
  config = _tiny(model_type, data.vocab_size)
  assert language_codes.scheme_for(config) == scheme
  model = families.build_model(config)
  params = jax.jit(model.init_unboxed)(jax.random.PRNGKey(0))["params"]
  base = str(tmp_path / "base")
  base_model.save_base_model(params, config, base)
  result = loop.train(
      model_dir=str(tmp_path / "task_en"), mixture_or_task_name="xquad.en",
      task_feature_lengths=LENGTHS, train_steps=1, initial_checkpoint_path=base,
      mixture_or_task_module="lta_tasks",
      adapter=AdapterConfig(kind="lora", rank=2, alpha=2.0), batch_size=8,
      optimizer=optimizers.make_optimizer(name="adamw"),
      log_period=1, checkpoint_period=1, async_checkpointing=False)
  assert result.step == 1 and all(np.isfinite(h["loss"])
                                  for h in result.history)
  paths = evaluate.run_eval(
      output_dir=str(tmp_path / "eval"), base_checkpoint=base,
      tasks=["xquad.en"], task_feature_lengths=LENGTHS, split="test",
      batch_size=2, max_examples=1, adapter_dir=result.adapter_dir)
  records = json.load(open(paths["results.json"]))["records"]
  assert records and all(np.isfinite(r["scores"]["f1"]) for r in records)
  predictions = [json.loads(line) for line in open(paths["predictions.jsonl"])]
  code = CODES[scheme][0]
  assert predictions and all(code not in p["prediction"] for p in predictions)


@pytest.mark.slow  # a second mBART training run; the default tier has one
def test_study_recipe_with_the_mbart_switch_trains_through_lta_train(
    data, tmp_path):
  from lta.cli import main as cli  # pylint: disable=g-import-not-at-top
  config = _tiny("mbart", data.vocab_size)
  params = jax.jit(families.build_model(config).init_unboxed)(
      jax.random.PRNGKey(0))["params"]
  base = str(tmp_path / "base")
  base_model.save_base_model(params, config, base)
  shapes = [f"--gin.BartConfig.{k}={v!r}" for k, v in (
      ("name", config.name), ("vocab_size", config.vocab_size),
      ("d_model", 16), ("num_heads", 2), ("d_ff", 32),
      ("num_encoder_layers", 1), ("num_decoder_layers", 1),
      ("max_position_embeddings", 128), ("dropout_rate", 0.0))]
  argv = ["train", "--gin_file=experiments/study_lora.gin",
          "--gin_file=experiments/study_mbart50.gin", *shapes,
          f'--gin.MODEL_DIR="{tmp_path / "run"}"',
          f'--gin.INITIAL_CHECKPOINT_PATH="{base}"',
          f'--gin.lta.vocab.get_vocabulary.path="{data.sentencepiece_model_file}"',
          '--gin.MIXTURE_OR_TASK_NAME="xquad.en"', "--gin.TRAIN_STEPS=1",
          "--gin.BATCH_SIZE=8", f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
          "--gin.train.eval_period=0"]
  assert cli.main(argv) == 0
  assert (tmp_path / "run" / "adapter" / "manifest.json").exists()
