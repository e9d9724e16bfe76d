"""XQuAD tasks on squad/v1.1 and xquad/<lang> directories written from
fixture release files (tests/fixtures/data/xquad) by TFDS's own parser."""

import json
import shutil

import pytest
import seqio
import tensorflow_datasets as tfds
from tensorflow_datasets.question_answering import xquad as tfds_xquad

from lta import errors
from lta.data import input_pipeline
from lta.data import vocab
from lta_tasks import xquad
from tests.tasks.conftest import FIXTURES

# Thai is not in the tiny vocabulary: its bytes need the long inputs.
LENGTHS = {"inputs": 512, "targets": 32}
SOURCE = FIXTURES / "xquad"
PREPARED_LANGS = ("en", "de", "zh", "ar", "th")


def _qas(file_name):
  data = json.loads((SOURCE / file_name).read_text("utf-8"))["data"]
  return {qa["id"]: (qa, p["context"])
          for article in data for p in article["paragraphs"] for qa in p["qas"]}


def _encode(text):
  return list(vocab.get_vocabulary().encode(text)) + [vocab.EOS_ID]


@pytest.fixture(scope="module")
def xquad_data_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("xquad_tfds"))
  counts = xquad.prepare(data_dir, str(SOURCE), PREPARED_LANGS)
  assert counts[xquad.SQUAD_TFDS] == {"train": 2, "validation": 1}
  assert counts["xquad/de:3.0.0"] == {"test": 1, "translate-dev": 1}
  assert counts["xquad/en:3.0.0"] == {"test": 1}
  return data_dir


@pytest.fixture
def xquad_dir(xquad_data_dir):
  seqio.set_tfds_data_dir_override(xquad_data_dir)
  yield xquad_data_dir
  seqio.set_tfds_data_dir_override(None)


def test_eleven_languages_and_the_builders_features():
  assert xquad.XQUAD_LANGS == tuple(tfds_xquad.LANGUAGES)
  assert len(xquad.XQUAD_LANGS) == 11
  configs = {c.name for c in tfds_xquad.Xquad.BUILDER_CONFIGS}
  assert configs == set(xquad.XQUAD_LANGS)
  for name in (xquad.SQUAD_TFDS, xquad.xquad_tfds_name("th")):
    features = tfds.builder(name).info.features
    assert set(features) == {"id", "title", "context", "question", "answers"}


def test_zeroshot_mixture_trains_on_english_squad_only():
  mixture = seqio.get_mixture_or_task("xquad_zeroshot")
  assert {t.name for t in mixture.tasks} == {"xquad.en"} | {
      f"xquad_eval.{l}" for l in xquad.XQUAD_LANGS if l != "en"}
  assert [t.name for t in mixture.tasks if "train" in t.splits] == ["xquad.en"]


@pytest.mark.parametrize("task, split, source_file", [
    ("xquad.en", "train", "train-v1.1.json"),
    ("xquad.en", "test", "xquad.en.json"),
    ("xquad_eval.de", "validation", "squad.translate.dev.en-de.json"),
    ("xquad_eval.th", "test", "xquad.th.json"),
])
def test_each_split_reads_its_release_file(xquad_dir, task, split,
                                           source_file):
  input_pipeline.check_task(task, split)
  examples = list(seqio.get_mixture_or_task(task).get_dataset(
      LENGTHS, split=split, shuffle=False).as_numpy_iterator())
  qas = _qas(source_file)
  assert sorted(ex["id"].decode() for ex in examples) == sorted(qas)
  for ex in examples:
    qa, context = qas[ex["id"].decode()]
    assert ex["inputs"].tolist() == _encode(
        f"question: {qa['question']} context: {context}")
    assert ex["targets"].tolist() == _encode(qa["answers"][0]["text"])


def test_postprocessing_and_squad_metric_on_chinese_and_arabic(xquad_dir):
  for lang, gold in (("zh", "亚马逊"), ("ar", "الأمازون")):
    task = seqio.get_mixture_or_task(xquad.eval_task_name(lang))
    (ex,) = task.get_dataset(LENGTHS, split="test",
                             shuffle=False).as_numpy_iterator()
    target = task.postprocess_fn("ignored", example=ex, is_target=True)
    assert target == [gold]
    prediction = task.postprocess_fn(f" {gold} ", example=ex)
    (metric,) = task.metric_fns
    assert metric([target], [prediction]) == {"f1": 100.0, "em": 100.0}


def test_unprepared_language_and_split_are_named(xquad_dir, tmp_path):
  with pytest.raises(errors.DataError, match="xquad/el:3.0.0 is not prepared"):
    input_pipeline.check_task("xquad_eval.el", "test")
  # th without XTREME's translate-dev: its validation split is missing.
  source = tmp_path / "src"
  source.mkdir()
  for name in ("train-v1.1.json", "dev-v1.1.json", "xquad.th.json"):
    shutil.copy(SOURCE / name, source / name)
  data_dir = str(tmp_path / "tfds")
  xquad.prepare(data_dir, str(source), ["th"])
  seqio.set_tfds_data_dir_override(data_dir)
  input_pipeline.check_task("xquad_eval.th", "test")
  with pytest.raises(errors.DataError,
                     match="xquad/th:3.0.0 has no prepared split "
                           "'translate-dev'"):
    input_pipeline.check_task("xquad_eval.th", "validation")


def test_prepare_refuses_missing_files_and_unknown_languages(tmp_path):
  with pytest.raises(errors.MissingFileError, match="xquad.vi.json is missing"):
    xquad.prepare(str(tmp_path), str(SOURCE), ["vi"])
  with pytest.raises(errors.ConfigError, match="did you mean 'zh'"):
    xquad.prepare(str(tmp_path), str(SOURCE), ["zhh"])
  assert not list(tmp_path.iterdir())  # nothing written before the checks
