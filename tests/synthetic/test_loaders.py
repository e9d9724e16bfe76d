"""The world's files through the real loaders: XL-Sum TFDS builder, mC4."""

import gzip
import json

import gin
import pytest
import seqio
import tensorflow_datasets as tfds

from lta.data import vocab
import lta_tasks  # pylint: disable=unused-import  (registers tasks, builder)
from lta_tasks import mc4
from lta.synthetic import world

LANGS = ("en", "uk", "fa")  # Latin source, Cyrillic and Armenian targets.


@pytest.fixture(scope="module")
def xlsum_data_dir(tiny_world, tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  for lang in LANGS:
    tfds.builder(f"xlsum/{lang}:2.0.0", data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=tiny_world.xlsum_dir))
  return data_dir


@pytest.fixture
def bindings():
  def bind(name, value):
    with gin.unlock_config():
      gin.bind_parameter(name, value)
  yield bind
  gin.clear_config()


def _jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("lang", LANGS)
def test_xlsum_builder_reads_the_release_files(tiny_world, xlsum_data_dir,
                                               lang):
  for split, suffix in (("train", "train"), ("validation", "val"),
                        ("test", "test")):
    ds = tfds.load(f"xlsum/{lang}:2.0.0", split=split, data_dir=xlsum_data_dir)
    got = sorted((ex["id"].decode(), {k: v.decode() for k, v in ex.items()})
                 for ex in tfds.as_numpy(ds))
    want = sorted((r["id"], r) for r in _jsonl(tiny_world.xlsum_path(lang,
                                                                     suffix)))
    assert got == want


@pytest.mark.parametrize("lang", LANGS)
def test_mc4_local_reader(tiny_world, bindings, lang):
  bindings("lta_tasks.mc4_local_dir.path", tiny_world.mc4_dir)
  source = mc4.Mc4Source(lang)
  for split in world.MC4_SPLITS:
    got = [ex["text"].decode() for ex in
           source.get_dataset(split, shuffle=False).as_numpy_iterator()]
    with gzip.open(tiny_world.mc4_path(lang, split), "rt",
                   encoding="utf-8") as f:
      assert got == [json.loads(line)["text"] for line in f]


def test_seqio_tasks_with_a_vocabulary_trained_on_the_corpus(
    tiny_world, xlsum_data_dir, bindings, tmp_path):
  with open(tiny_world.corpus_path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  spm_path = vocab.train_tiny_sentencepiece(lines + ["summarize:"],
                                            str(tmp_path / "spm"), 400,
                                            character_coverage=1.0)
  bindings("lta.vocab.get_vocabulary.path", spm_path)
  bindings("lta_tasks.mc4_local_dir.path", tiny_world.mc4_dir)
  vocabulary = vocab.get_vocabulary()
  # Synthetic words are covered by pieces, not bytes.
  assert not any(vocabulary.tokenizer.id_to_piece(i).startswith("<0x")
                 for line in lines for i in vocabulary.encode(line))

  seqio.set_tfds_data_dir_override(xlsum_data_dir)
  try:
    ds = seqio.get_mixture_or_task("xlsum.uk").get_dataset(
        {"inputs": 256, "targets": 32}, split="validation", shuffle=False)
    examples = list(ds.as_numpy_iterator())
  finally:
    seqio.set_tfds_data_dir_override(None)
  records = _jsonl(tiny_world.xlsum_path("uk", "val"))
  decoded = [vocabulary.decode(ex["targets"].tolist()) for ex in examples]
  assert sorted(decoded) == sorted(r["summary"] for r in records)

  ds = seqio.get_mixture_or_task(mc4.task_name("fa")).get_dataset(
      {"inputs": 16, "targets": 16}, split="validation", shuffle=False, seed=0)
  examples = list(ds.as_numpy_iterator())
  with gzip.open(tiny_world.mc4_path("fa", "validation"), "rt",
                 encoding="utf-8") as f:
    documents = [vocabulary.encode(json.loads(line)["text"]) for line in f]
  assert len(documents) == tiny_world.config.mc4_validation
  # Prefix-LM makes one example per segment: at least one per document, and
  # every example is a contiguous piece of some document.
  assert len(examples) >= len(documents)

  def contains(tokens, chunk):
    return any(tokens[i:i + len(chunk)] == chunk
               for i in range(len(tokens) - len(chunk) + 1))

  for ex in examples:
    chunk = ex["inputs"].tolist()[:-1] + ex["targets"].tolist()[:-1]
    assert any(contains(tokens, chunk) for tokens in documents)
