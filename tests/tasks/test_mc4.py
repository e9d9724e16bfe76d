"""mC4 prefix-LM tasks, from local json.gz shards and from TFDS."""

import gzip
import json

import gin
import pytest
import seqio
import tensorflow as tf

from lta import errors
from lta.data import vocab
from lta_tasks import jsonl_records
from lta_tasks import mc4
from tests.tasks.conftest import FIXTURES

# Segments of 8 tokens; targets (at most 7 of them) are never cut.
LENGTHS = {"inputs": 9, "targets": 9}


def _bind(name, value):
  with gin.unlock_config():
    gin.bind_parameter(name, value)


def _texts(stem):
  texts = []
  for path in sorted((FIXTURES / "mc4").glob(f"{stem}.tfrecord-*.json.gz")):
    with gzip.open(path, "rt", encoding="utf-8") as f:
      texts += [json.loads(line)["text"] for line in f]
  return texts


def _examples(name, split="train", seed=5):
  ds = seqio.get_mixture_or_task(name).get_dataset(
      LENGTHS, split=split, shuffle=False, seed=seed)
  return [{k: v.tolist() for k, v in ex.items()} for ex in ds.as_numpy_iterator()]


def _check_prefix_lm(examples, texts):
  """Examples are the texts' 8-token segments, in order, each split in two
  with EOS after each half."""
  tokens = []
  for ex in examples:
    assert ex["inputs"][-1] == vocab.EOS_ID and ex["targets"][-1] == vocab.EOS_ID
    inputs, targets = ex["inputs"][:-1], ex["targets"][:-1]
    assert len(inputs) + len(targets) <= 8 and targets
    tokens += inputs + targets
  encoded = [list(vocab.get_vocabulary().encode(t)) for t in texts]
  assert tokens == sum(encoded, [])
  assert len(examples) == sum(-(-len(e) // 8) for e in encoded)


def test_every_mc4_language_has_a_task():
  names = set(seqio.TaskRegistry.names())
  assert len(mc4.MC4_LANGS) > 100
  for lang in mc4.MC4_LANGS:
    assert mc4.task_name(lang) in names
  assert "mc4_prefix_lm.bg_Latn" in names and "mc4_prefix_lm.zh" in names


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("split, stem", [("train", "c4-{}"),
                                         ("validation", "c4-{}-validation")])
def test_local_shards(lang, split, stem):
  _bind("lta_tasks.mc4_local_dir.path", str(FIXTURES / "mc4"))
  examples = _examples(mc4.task_name(lang), split)
  _check_prefix_lm(examples, _texts(stem.format(lang)))
  assert examples == _examples(mc4.task_name(lang), split)  # Same seed.
  assert examples != _examples(mc4.task_name(lang), split, seed=6)


def test_tfds_source_gives_the_same_examples_as_local_shards(tfds_dir):
  from_tfds = _examples("mc4_prefix_lm.ru")
  _check_prefix_lm(from_tfds, _texts("c4-ru"))
  _bind("lta_tasks.mc4_local_dir.path", str(FIXTURES / "mc4"))
  assert _examples("mc4_prefix_lm.ru") == from_tfds


def test_missing_shards_name_the_pattern(tmp_path):
  _bind("lta_tasks.mc4_local_dir.path", str(tmp_path))
  with pytest.raises(errors.DataError, match=r"c4-sw\.tfrecord-\*"):
    _examples("mc4_prefix_lm.sw")


def _write_shard(directory, lines, lang="sw"):
  path = directory / f"c4-{lang}.tfrecord-00000-of-00001.json.gz"
  with gzip.open(path, "wb") as f:
    f.write(b"\n".join(lines) + b"\n")
  return path


def _good(text):
  return json.dumps({"text": text, "timestamp": "2020", "url": "u"}).encode()


def test_malformed_shard_names_file_and_line(tmp_path):
  path = _write_shard(tmp_path, [_good("habari za asubuhi"),
                                 b'{"text": "x", "url": "u"}'])
  _bind("lta_tasks.mc4_local_dir.path", str(tmp_path))
  with pytest.raises(tf.errors.OpError) as error:
    _examples("mc4_prefix_lm.sw")
  assert f"{path}:2: missing field 'timestamp'" in str(error.value)


def test_malformed_records_are_skipped_and_counted_when_asked(tmp_path):
  path = _write_shard(tmp_path, [b'{"text": "\xfe", "timestamp": "", "url": ""}',
                                 _good("habari za asubuhi leo"), _good("")])
  _bind("lta_tasks.mc4_local_dir.path", str(tmp_path))
  _bind("lta_tasks.skip_malformed_records.skip", True)
  _check_prefix_lm(_examples("mc4_prefix_lm.sw"), ["habari za asubuhi leo"])
  assert jsonl_records.skipped_record_counts()[str(path)] >= 2


def test_shard_without_usable_records_is_an_error(tmp_path):
  _write_shard(tmp_path, [_good("  ")])
  _bind("lta_tasks.mc4_local_dir.path", str(tmp_path))
  _bind("lta_tasks.skip_malformed_records.skip", True)
  with pytest.raises(tf.errors.OpError, match="no usable records"):
    _examples("mc4_prefix_lm.sw")
