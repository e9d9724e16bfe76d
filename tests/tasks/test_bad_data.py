"""Bad data in the real formats, through `lta prepare-data`'s library path.

Each case writes corrupt, mislabelled or malformed files where a user would
put them (XL-Sum release jsonl in a TFDS manual dir, mC4 json.gz shards,
TyDi QA GoldP JSON) and prepares them as `lta prepare-data` does. An error
case must raise a one-line `DataError` naming the file and the line or
field; a skip case (`--skip_malformed`) must prepare the good data and count
what it skipped.
"""

import dataclasses
import gzip
import json
import logging
import shutil
from typing import Callable, Optional

import pytest
import seqio

from lta import errors
from lta.data import input_pipeline
from lta_tasks import mc4
from lta_tasks import mc4_index
from lta_tasks import prepare
from tests.tasks.conftest import FIXTURES

DEEP = b"[" * 100_000 + b"]" * 100_000
SHARD = "c4-sw.tfrecord-00000-of-00001.json.gz"
VALIDATION_SHARD = "c4-sw-validation.tfrecord-00000-of-00001.json.gz"
TYDI_TRAIN = "tydiqa-goldp-v1.1-train.json"
TYDI_DEV = "tydiqa-goldp-v1.1-dev.json"


# ------------------------------- file makers -------------------------------


def _article(i, **overrides):
  record = {"id": f"a{i}", "url": "u", "title": "t", "summary": f"summary {i}",
            "text": f"text {i}"}
  record.update(overrides)
  return json.dumps(record).encode()


def _doc(i, **overrides):
  record = {"text": f"habari za asubuhi {i}", "timestamp": "2020", "url": "u"}
  record.update(overrides)
  return json.dumps(record).encode()


def _lines(*lines):
  return b"\n".join(lines) + b"\n"


def _gz(data: bytes) -> bytes:
  return gzip.compress(data, mtime=0)


def _many_docs(n=300):
  return _lines(*[_doc(i, text=f"maneno {i} " * (i % 7 + 3)) for i in range(n)])


def _corrupt_deflate(data: bytes) -> bytes:
  middle = len(data) // 2
  return data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 16]) + (
      data[middle + 16:])


def _bad_crc(data: bytes) -> bytes:
  return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


def _question(qid="english-1-0", question="Why?", answers=None,
              context="The sky is blue.", **overrides):
  qa = {"id": qid, "question": question,
        "answers": [{"text": "blue", "answer_start": 11}]
                   if answers is None else answers}
  qa.update(overrides)
  return {"title": "T", "paragraphs": [{"context": context, "qas": [qa]}]}


def _goldp(*articles):
  return json.dumps({"version": "v1.1", "data": list(articles)},
                    indent=1).encode()


# ------------------------------- the actions -------------------------------


def _request(tmp_path, tiny_spm_path, **kwargs):
  return prepare.Request(tfds_data_dir=str(tmp_path / "tfds"),
                         vocab_path=tiny_spm_path, **kwargs)


def _prepare_xlsum(src, tmp_path, spm, skip):
  return prepare.run(prepare.plan(_request(
      tmp_path, spm, xlsum_manual_dir=str(src), xlsum_languages=["en"],
      skip_malformed=skip)))


def _prepare_mc4(src, tmp_path, spm, skip):
  return prepare.run(prepare.plan(_request(
      tmp_path, spm, mc4_dir=str(src), mc4_languages=["sw"],
      skip_malformed=skip)))


def _prepare_tydiqa(src, tmp_path, spm, skip):
  return prepare.run(prepare.plan(_request(
      tmp_path, spm, tydiqa=True, tydiqa_dir=str(src), skip_malformed=skip)))


ACTIONS = {"xlsum": _prepare_xlsum, "mc4": _prepare_mc4,
           "tydiqa": _prepare_tydiqa}


def _base_files(family):
  """The good files of a family; a case replaces or removes some."""
  if family == "xlsum":
    files = {f"english_{s}.jsonl": (FIXTURES / "xlsum" /
                                    f"english_{s}.jsonl").read_bytes()
             for s in ("train", "val", "test")}
  elif family == "mc4":
    files = {SHARD: _gz(_lines(_doc(0), _doc(1))),
             VALIDATION_SHARD: _gz(_lines(_doc(2)))}
  else:
    files = {name: (FIXTURES / "tydiqa" / name).read_bytes()
             for name in (TYDI_TRAIN, TYDI_DEV)}
  return files


@dataclasses.dataclass
class Case:
  family: str
  files: dict  # name -> bytes, or None to remove the file
  expect: tuple = ()  # substrings of the error message
  skip: bool = False
  check: Optional[Callable] = None  # skip cases: check(prepared list)


def _write(tmp_path, case):
  src = tmp_path / "src"
  src.mkdir()
  files = {**_base_files(case.family), **case.files}
  for name, data in files.items():
    if data is not None:
      (src / name).write_bytes(data)
  return src


def _skipped(n, **examples):
  def check(prepared):
    (result,) = prepared
    assert result.skipped == n
    for split, count in examples.items():
      assert result.examples[split] == count
  return check


def _corrupt_left_out(prepared, n):
  (result,) = prepared
  assert result.examples == {"train": 1, "validation": 1}
  assert f"{n} corrupt shards left out" in result.note


X = "english_train.jsonl"
T = TYDI_TRAIN
CASES = {
    # XL-Sum release files in a TFDS manual dir.
    "xlsum_invalid_json": Case("xlsum", {X: _lines(_article(0), b'{"id": ')},
                               (f"{X}:2: invalid JSON",)),
    "xlsum_missing_field": Case(
        "xlsum", {X: _lines(_article(0), b'{"id": "x", "text": "t"}')},
        (f"{X}:2: missing field 'url'",)),
    "xlsum_number_summary": Case(
        "xlsum", {X: _lines(_article(0), _article(1, summary=3))},
        (f"{X}:2: field 'summary' must be a string",)),
    "xlsum_empty_text": Case("xlsum", {X: _lines(_article(0, text=" "))},
                             (f"{X}:1: empty field 'text'",)),
    "xlsum_null_text": Case("xlsum", {X: _lines(_article(0, text=None))},
                            (f"{X}:1: field 'text' must be a string",)),
    "xlsum_invalid_utf8": Case(
        "xlsum", {X: _lines(_article(0), _article(1)[:-3] + b'\xff"}')},
        (f"{X}:2: invalid UTF-8",)),
    "xlsum_lone_surrogate": Case(
        "xlsum", {X: _lines(_article(0), _article(1, summary="a\ud800b"))},
        (f"{X}:2: field 'summary' holds a lone surrogate",)),
    "xlsum_deeply_nested": Case(
        "xlsum", {X: _lines(_article(0), b'{"id": ' + DEEP + b"}")},
        (f"{X}:2: JSON nested too deeply",)),
    "xlsum_array_record": Case("xlsum", {X: _lines(b"[1, 2]")},
                               (f"{X}:1: expected a JSON object",)),
    "xlsum_utf8_bom": Case("xlsum", {X: b"\xef\xbb\xbf" + _lines(_article(0))},
                           (f"{X}:1: invalid JSON",)),
    "xlsum_truncated_file": Case(
        "xlsum", {X: _lines(_article(0), _article(1))[:-20]},
        (f"{X}:2: invalid JSON",)),
    "xlsum_empty_file": Case("xlsum", {X: b""}, (f"{X}: no usable records",)),
    "xlsum_gzip_named_jsonl": Case(
        "xlsum", {X: _gz(_lines(_article(0)))}, (f"{X}:1: invalid UTF-8",)),
    "xlsum_missing_split_file": Case(
        "xlsum", {"english_val.jsonl": None}, ("english_val.jsonl",)),
    "xlsum_skip_bad_records": Case(
        "xlsum", {X: _lines(_article(0), _article(1, summary="\ud800"),
                            b'{"id": ' + DEEP + b"}", b"{", _article(2))},
        skip=True, check=_skipped(3, train=2)),
    # mC4 json.gz shards.
    "mc4_truncated_gzip": Case(
        "mc4", {SHARD: _gz(_many_docs())[:600]},
        (SHARD, "truncated gzip", "after line")),
    "mc4_corrupt_deflate": Case(
        "mc4", {SHARD: _corrupt_deflate(_gz(_many_docs()))},
        (SHARD, "corrupt gzip")),
    "mc4_bad_crc": Case("mc4", {SHARD: _bad_crc(_gz(_many_docs()))},
                        (SHARD, "checksum does not match", "after line 300")),
    "mc4_plain_text_named_gz": Case(
        "mc4", {SHARD: _lines(_doc(0))}, (SHARD, "not gzip data", "at its start")),
    "mc4_empty_file": Case("mc4", {SHARD: b""}, (f"{SHARD}: no usable records",)),
    "mc4_missing_field": Case(
        "mc4", {SHARD: _gz(_lines(_doc(0), b'{"text": "x", "url": "u"}'))},
        (f"{SHARD}:2: missing field 'timestamp'",)),
    "mc4_invalid_json": Case("mc4", {SHARD: _gz(_lines(b'{"text": "x",'))},
                             (f"{SHARD}:1: invalid JSON",)),
    "mc4_lone_surrogate": Case(
        "mc4", {SHARD: _gz(_lines(_doc(0, text="x\udfffy")))},
        (f"{SHARD}:1: field 'text' holds a lone surrogate",)),
    "mc4_deeply_nested": Case(
        "mc4", {SHARD: _gz(_lines(_doc(0), b'{"text": ' + DEEP + b"}"))},
        (f"{SHARD}:2: JSON nested too deeply",)),
    "mc4_invalid_utf8": Case(
        "mc4", {SHARD: _gz(_lines(b'{"text": "\xc3\x28", "timestamp": "",'
                                  b' "url": ""}'))},
        (f"{SHARD}:1: invalid UTF-8",)),
    "mc4_text_not_a_string": Case(
        "mc4", {SHARD: _gz(_lines(_doc(0, text=["a"])))},
        (f"{SHARD}:1: field 'text' must be a string",)),
    "mc4_no_train_shard": Case(
        "mc4", {SHARD: None},
        ("c4-sw.tfrecord-*-of-*.json.gz", "only its validation shards")),
    "mc4_skip_corrupt_shard": Case(
        "mc4", {SHARD: _gz(_many_docs())[:600],
                "c4-sw.tfrecord-00001-of-00002.json.gz": _gz(_lines(_doc(5)))},
        skip=True, check=lambda prepared: _corrupt_left_out(prepared, 1)),
    "mc4_skip_bad_records": Case(
        "mc4", {SHARD: _gz(_lines(_doc(0, text="\ud800"), b"{", _doc(1)))},
        skip=True, check=_skipped(2, train=1, validation=1)),
    # TyDi QA GoldP release JSON.
    "tydiqa_truncated_json": Case("tydiqa", {T: _goldp(_question())[:-9]},
                                  (f"{T}:", "invalid JSON")),
    "tydiqa_not_json": Case("tydiqa", {T: b"question,answer\nwhy,blue\n"},
                            (f"{T}:1: invalid JSON",)),
    "tydiqa_no_data": Case("tydiqa", {T: b'{"version": "v1.1"}'},
                           (f"{T}: data: expected list, got nothing",)),
    "tydiqa_missing_answers": Case(
        "tydiqa", {T: _goldp({"title": "T", "paragraphs": [{
            "context": "c", "qas": [{"id": "english-1", "question": "q"}]}]})},
        ("data[0].paragraphs[0].qas[0].answers: expected list",)),
    "tydiqa_no_answer": Case("tydiqa", {T: _goldp(_question(answers=[]))},
                             ("qas[0].answers: empty list",)),
    "tydiqa_answer_start_string": Case(
        "tydiqa", {T: _goldp(_question(answers=[{"text": "blue",
                                                 "answer_start": "11"}]))},
        ("qas[0].answers[0].answer_start: expected int, got str",)),
    "tydiqa_answer_outside_context": Case(
        "tydiqa", {T: _goldp(_question(answers=[{"text": "blue",
                                                 "answer_start": 99}]))},
        ("answers[0].answer_start: 99 is outside the context",)),
    "tydiqa_unknown_language": Case(
        "tydiqa", {T: _goldp(_question(qid="klingon-1-0"))},
        ("qas[0].id: 'klingon-1-0' does not start with a TyDi QA language",)),
    "tydiqa_misspelt_language": Case(
        "tydiqa", {T: _goldp(_question(qid="englsh-1-0"))},
        ("qas[0].id", "did you mean 'english'")),
    "tydiqa_lone_surrogate": Case(
        "tydiqa", {T: _goldp(_question(question="why\ud800"))},
        ("qas[0].question: lone surrogate",)),
    "tydiqa_deeply_nested": Case(
        "tydiqa", {T: b'{"data": ' + DEEP + b"}"}, (T, "nested too deeply")),
    "tydiqa_invalid_utf8": Case(
        "tydiqa", {T: _goldp(_question()).replace(b"Why?", b"Why\xff")},
        (f"{T}:", "invalid UTF-8")),
    "tydiqa_missing_context": Case(
        "tydiqa", {T: _goldp({"title": "T", "paragraphs": [{"qas": []}]})},
        ("data[0].paragraphs[0].context: expected str, got nothing",)),
    "tydiqa_missing_dev_file": Case("tydiqa", {TYDI_DEV: None},
                                    (f"{TYDI_DEV} is missing",)),
    "tydiqa_skip_bad_questions": Case(
        "tydiqa", {T: _goldp(_question(), _question(qid="english-2-0",
                                                    answers=[]),
                             _question(qid="x-3"))},
        skip=True, check=_skipped(2, train=1, validation=3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_data(name, tmp_path, tiny_spm_path):
  case = CASES[name]
  src = _write(tmp_path, case)
  action = ACTIONS[case.family]
  if case.skip:
    case.check(action(src, tmp_path, tiny_spm_path, True))
    return
  with pytest.raises(errors.DataError) as error:
    action(src, tmp_path, tiny_spm_path, False)
  message = str(error.value)
  assert "\n" not in message
  for part in case.expect:
    assert part in message


def test_harness_has_enough_cases():
  assert len(CASES) >= 27
  assert {c.family for c in CASES.values()} == set(ACTIONS)


# ------------------------- mC4 read by the training task -------------------------


def _bind(name, value):
  import gin  # pylint: disable=g-import-not-at-top
  with gin.unlock_config():
    gin.bind_parameter(name, value)


def test_training_reads_the_index_and_check_task_sees_changed_shards(
    tmp_path, tiny_spm_path):
  src = _write(tmp_path, Case("mc4", {}))
  data_dir = str(tmp_path / "tfds")
  (prepared,) = _prepare_mc4(src, tmp_path, tiny_spm_path, False)
  assert prepared.location == mc4_index.index_path(data_dir, "sw")
  seqio.set_tfds_data_dir_override(data_dir)
  try:
    input_pipeline.check_task(mc4.task_name("sw"))
    task = seqio.get_mixture_or_task(mc4.task_name("sw"))
    assert task.num_input_examples("train") == 2
    examples = list(task.get_dataset({"inputs": 64, "targets": 64},
                                     split="validation", shuffle=False)
                    .as_numpy_iterator())
    assert len(examples) == 1
    shard = src / SHARD
    shard.write_bytes(shard.read_bytes()[:-5])
    with pytest.raises(errors.DataError, match=f"{SHARD}: .* bytes, but"):
      input_pipeline.check_task(mc4.task_name("sw"))
  finally:
    seqio.set_tfds_data_dir_override(None)


def test_streaming_read_skips_a_corrupt_shard_and_says_so_once(
    tmp_path, caplog):
  src = tmp_path / "mc4"
  src.mkdir()
  (src / "c4-sw.tfrecord-00000-of-00002.json.gz").write_bytes(
      _gz(_many_docs())[:600])
  (src / "c4-sw.tfrecord-00001-of-00002.json.gz").write_bytes(
      _gz(_lines(_doc(0))))
  _bind("lta_tasks.mc4_local_dir.path", str(src))
  _bind("lta_tasks.skip_malformed_records.skip", True)
  task = seqio.get_mixture_or_task(mc4.task_name("sw"))
  caplog.set_level(logging.WARNING)
  ds = task.source.get_dataset("train", shuffle=False)
  texts = [ex["text"] for ex in ds.repeat(2).as_numpy_iterator()]
  # The good shard twice, and whatever came before the truncation.
  assert texts.count(b"habari za asubuhi 0") == 2
  said = [r for r in caplog.records if "corrupt file" in r.getMessage()
          and "00000-of-00002" in r.getMessage()]
  assert len(said) == 1


def test_streaming_read_fails_on_a_corrupt_shard_naming_it(tmp_path):
  src = tmp_path / "mc4"
  src.mkdir()
  shutil.copy(FIXTURES / "mc4" / "c4-en.tfrecord-00000-of-00002.json.gz",
              src / "c4-sw.tfrecord-00000-of-00001.json.gz")
  (src / SHARD).write_bytes((src / SHARD).read_bytes()[:-30])
  _bind("lta_tasks.mc4_local_dir.path", str(src))
  task = seqio.get_mixture_or_task(mc4.task_name("sw"))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with pytest.raises(tf.errors.OpError) as error:
    list(task.source.get_dataset("train", shuffle=False).as_numpy_iterator())
  # tf.data wraps the reader's one-line DataError; its line is intact.
  assert (f"CorruptFileError: {src / SHARD}: truncated gzip" in
          str(error.value))
