"""TyDi QA GoldP tasks on a tydi_qa/goldp:3.0.0 directory built from fixtures."""

import json

import pytest
import seqio
import tensorflow_datasets as tfds

from lta.data import vocab
from lta_tasks import tydiqa
from tests.tasks.conftest import FIXTURES

LONG = {"inputs": 256, "targets": 32}


def _encode(text):
  return list(vocab.get_vocabulary().encode(text)) + [vocab.EOS_ID]


def _fixture_qas(name):
  data = json.loads((FIXTURES / "tydiqa" / f"tydiqa-goldp-v1.1-{name}.json")
                    .read_text("utf-8"))["data"]
  return {qa["id"]: (qa, p["context"])
          for article in data for p in article["paragraphs"] for qa in p["qas"]}


def test_nine_languages_and_real_tfds_features():
  assert set(tydiqa.TYDIQA_LANGS) == {
      "ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"}
  features = tfds.builder(tydiqa.TFDS_NAME).info.features
  assert set(features) == {"id", "title", "context", "question", "answers"}
  assert set(features["answers"].feature) == {"text", "answer_start"}


def test_zeroshot_mixture_trains_on_english_only():
  mixture = seqio.get_mixture_or_task("tydiqa_goldp_zeroshot")
  assert {t.name for t in mixture.tasks} == {"tydiqa_goldp.en"} | {
      f"tydiqa_goldp_dev.{lang}" for lang in tydiqa.TYDIQA_LANGS if lang != "en"}
  assert [t.name for t in mixture.tasks if "train" in t.splits] == [
      "tydiqa_goldp.en"]


@pytest.mark.parametrize("lang, split, ids", [
    ("en", "train", {"english-1001-0", "english-1002-0"}),
    ("fi", "train", {"finnish--2003-0"}),
    ("ar", "train", {"arabic-3004-0"}),
    ("en", "validation", {"english-4001-0"}),
    ("ar", "validation", {"arabic-5002-0"}),
    ("ko", "validation", {"korean--6003-0"}),
])
def test_language_filter_and_exact_tokens(tfds_dir, lang, split, ids):
  name = (tydiqa.task_name if split == "train" else tydiqa.dev_task_name)(lang)
  examples = list(seqio.get_mixture_or_task(name).get_dataset(
      LONG, split=split, shuffle=False).as_numpy_iterator())
  assert {ex["id"].decode() for ex in examples} == ids
  qas = _fixture_qas("train" if split == "train" else "dev")
  for ex in examples:
    qa, context = qas[ex["id"].decode()]
    assert ex["inputs"].tolist() == _encode(
        f"question: {qa['question']} context: {context}")
    assert ex["targets"].tolist() == _encode(qa["answers"][0]["text"])


def test_postprocessing_and_squad_metric(tfds_dir):
  task = seqio.get_mixture_or_task("tydiqa_goldp.ar")
  (ex,) = task.get_dataset(LONG, split="validation", shuffle=False).as_numpy_iterator()
  target = task.postprocess_fn("ignored", example=ex, is_target=True)
  assert target == ["نهر النيل"]
  predictions = [task.postprocess_fn(" نهر النيل ", example=ex, is_target=False)]
  (metric,) = task.metric_fns
  assert metric([target], predictions) == {"f1": 100.0, "em": 100.0}
  half = metric([target], ["النيل"])
  assert half["em"] == 0.0 and half["f1"] == pytest.approx(200 / 3)


def test_a_language_with_no_examples_is_an_error():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices({"id": ["english-1", "english-2"]})
  assert len(list(tydiqa.filter_language(ds, "en"))) == 2
  with pytest.raises(ValueError, match="no 'sw' examples"):
    tydiqa.filter_language(ds, "sw")
