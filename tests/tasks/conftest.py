"""Fixtures for the task tests: a tiny vocabulary and TFDS data from fixtures.

Everything is built once per session from the committed files in
tests/fixtures/data (see make_task_fixtures.py there) in the real formats:
XL-Sum jsonl goes through `lta_tasks.xlsum_builder`, TyDi QA SQuAD JSON
through `lta_tasks.tydiqa_builder` into a `tydi_qa/goldp:3.0.0` directory,
and mC4 json.gz is read directly (plus a `c4/multilingual:3.1.0` directory
written with TFDS's SequentialWriter).

The end-to-end tests here train and decode the same tiny programs many
times: they share the persistent XLA cache that tests/conftest.py sets.
"""

import gzip
import importlib.util
import json
import pathlib
import sys

import gin
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "data"

# `tasks/` installs as `lta_tasks`; make it importable from a checkout.
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))
if "lta_tasks" not in sys.modules:
  try:
    import lta_tasks  # pylint: disable=unused-import
  except ImportError:
    _spec = importlib.util.spec_from_file_location(
        "lta_tasks",
        ROOT / "tasks" / "__init__.py",
        submodule_search_locations=[str(ROOT / "tasks")],
    )
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["lta_tasks"] = _module
    _spec.loader.exec_module(_module)

import lta_tasks  # pylint: disable=g-import-not-at-top,wrong-import-position
from lta.data import vocab  # pylint: disable=g-import-not-at-top,wrong-import-position
import seqio  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position

XLSUM_FIXTURE_LANGS = {"en": "english", "ar": "arabic", "zh": "chinese_simplified"}


def fixture_texts() -> list[str]:
  """Every text in the fixtures, to train the tiny vocabulary on."""
  texts = []
  for path in sorted((FIXTURES / "xlsum").glob("*.jsonl")):
    for line in path.read_text(encoding="utf-8").splitlines():
      record = json.loads(line)
      texts += [record["title"], record["summary"], record["text"]]
  for path in sorted((FIXTURES / "tydiqa").glob("*.json")):
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
      for paragraph in article["paragraphs"]:
        texts.append(paragraph["context"])
        texts += [qa["question"] for qa in paragraph["qas"]]
  for path in sorted((FIXTURES / "mc4").glob("*.json.gz")):
    with gzip.open(path, "rt", encoding="utf-8") as f:
      texts += [json.loads(line)["text"] for line in f]
  texts += ["summarize:", "question:", "context:"]
  return texts


@pytest.fixture(scope="session")
def tiny_spm_path(tmp_path_factory) -> str:
  prefix = tmp_path_factory.mktemp("spm") / "tiny"
  return vocab.train_tiny_sentencepiece(fixture_texts(), str(prefix), 1000)


@pytest.fixture(autouse=True)
def tiny_vocabulary(tiny_spm_path):
  """Points every task at the tiny vocabulary through gin, as a run would."""
  with gin.unlock_config():
    gin.bind_parameter("lta.vocab.get_vocabulary.path", tiny_spm_path)
  yield vocab.get_vocabulary()
  gin.clear_config()


def _write_tfds(info, splits: dict[str, list[dict]]) -> None:
  pathlib.Path(info.data_dir).mkdir(parents=True, exist_ok=True)
  writer = tfds.core.SequentialWriter(info, max_examples_per_shard=100)
  writer.initialize_splits(list(splits))
  writer.add_examples(splits)
  writer.close_all()


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir with XL-Sum (en, ar, zh), TyDi QA GoldP and mC4 (en, ru)."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  lta_tasks.xlsum_builder.prepare(
      XLSUM_FIXTURE_LANGS, data_dir, manual_dir=str(FIXTURES / "xlsum"))

  lta_tasks.tydiqa_builder.prepare(data_dir, str(FIXTURES / "tydiqa"))

  c4 = tfds.builder("c4/multilingual:3.1.0", data_dir=data_dir)
  c4_splits = {}
  for lang in ("en", "ru"):
    for split, stem in (("train", f"c4-{lang}"),
                        ("validation", f"c4-{lang}-validation")):
      examples = []
      for path in sorted((FIXTURES / "mc4").glob(f"{stem}.tfrecord-*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
          for line in f:
            record = json.loads(line)
            examples.append({
                "text": record["text"], "url": record["url"],
                "timestamp": record["timestamp"],
                "content-type": "text/plain", "content-length": "0",
            })
      c4_splits[lang if split == "train" else f"{lang}-validation"] = examples
  _write_tfds(c4.info, c4_splits)
  return data_dir


@pytest.fixture
def tfds_dir(tfds_data_dir):
  """Reads every TFDS-backed task from the fixture data dir."""
  seqio.set_tfds_data_dir_override(tfds_data_dir)
  yield tfds_data_dir
  seqio.set_tfds_data_dir_override(None)
