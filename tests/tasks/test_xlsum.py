"""XL-Sum: the TFDS builder on release-format files, and the xlsum tasks."""

import json
import shutil

import gin
import pytest
import seqio
import tensorflow_datasets as tfds

from lta import errors
from lta.data import vocab
from lta.languages.related import XLSUM_SEEN, XLSUM_UNSEEN
import lta_tasks
from lta_tasks import jsonl_records
from lta_tasks import xlsum
from lta_tasks import xlsum_builder
from tests.tasks.conftest import FIXTURES
from tests.tasks.conftest import XLSUM_FIXTURE_LANGS

LONG = {"inputs": 512, "targets": 128}


def _records(language, split_file):
  path = FIXTURES / "xlsum" / f"{language}_{split_file}.jsonl"
  return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _encode(text):
  return list(vocab.get_vocabulary().encode(text)) + [vocab.EOS_ID]


def _prepare(data_dir, manual_dir, lang="en", **builder_kwargs):
  builder = tfds.builder(f"xlsum/{lang}:2.0.0", data_dir=str(data_dir),
                         **builder_kwargs)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  return builder


def test_language_sets_match_the_paper():
  assert len(xlsum.XLSUM_LANGS) == 45
  assert set(XLSUM_SEEN) == {
      "ar", "bn", "en", "id", "ja", "ko", "ru", "sw", "te", "th", "tr"}
  assert set(XLSUM_UNSEEN) == {
      "mr", "gu", "zh", "ne", "pt", "si", "so", "vi", "yo", "uk", "fa"}
  assert not set(XLSUM_SEEN) & set(XLSUM_UNSEEN)
  assert set(XLSUM_SEEN + XLSUM_UNSEEN) <= set(xlsum.XLSUM_LANGS)
  assert xlsum_builder.XLSUM_LANGUAGES["zh"] == "chinese_simplified"
  assert xlsum_builder.XLSUM_LANGUAGES["ne"] == "nepali"


def test_every_language_has_a_task_and_builder_config():
  names = set(seqio.TaskRegistry.names())
  configs = {c.name for c in xlsum_builder.Xlsum.BUILDER_CONFIGS}
  assert configs == set(xlsum.XLSUM_LANGS)
  for lang in xlsum.XLSUM_LANGS:
    assert f"xlsum.{lang}" in names and f"xlsum_eval.{lang}" in names
  assert seqio.get_mixture_or_task("xlsum.en").splits == (
      "train", "validation", "test")


def test_mixtures_resolve_to_the_right_tasks():
  seen = seqio.get_mixture_or_task("xlsum_seen")
  assert {t.name for t in seen.tasks} == {
      f"xlsum.{lang}" for lang in XLSUM_SEEN}
  zeroshot = seqio.get_mixture_or_task("xlsum_zeroshot")
  assert {t.name for t in zeroshot.tasks} == {"xlsum.en"} | {
      f"xlsum_eval.{lang}" for lang in XLSUM_UNSEEN}


def test_builder_reads_release_files_exactly(tfds_dir):
  for lang, language in XLSUM_FIXTURE_LANGS.items():
    for split, split_file in (("train", "train"), ("validation", "val"),
                              ("test", "test")):
      ds = tfds.load(f"xlsum/{lang}:2.0.0", split=split, data_dir=tfds_dir)
      got = sorted((ex["id"].decode(), {k: v.decode() for k, v in ex.items()})
                   for ex in tfds.as_numpy(ds))
      want = sorted((r["id"], r) for r in _records(language, split_file))
      assert got == want


@pytest.mark.parametrize("lang", sorted(XLSUM_FIXTURE_LANGS))
def test_task_tokenizes_summarize_prompt_and_summary(tfds_dir, lang):
  task = seqio.get_mixture_or_task(f"xlsum.{lang}")
  for split, split_file in (("train", "train"), ("validation", "val"),
                            ("test", "test")):
    examples = list(task.get_dataset(LONG, split=split, shuffle=False)
                    .as_numpy_iterator())
    records = {r["id"]: r for r in _records(XLSUM_FIXTURE_LANGS[lang], split_file)}
    assert len(examples) == len(records)
    for ex in examples:
      record = records[ex["id"].decode()]
      assert ex["inputs"].tolist() == _encode("summarize: " + record["text"])
      assert ex["targets"].tolist() == _encode(record["summary"])
      assert vocab.get_vocabulary().decode(ex["targets"].tolist()) == record["summary"]


def test_eval_task_has_only_evaluation_splits_of_the_same_data(tfds_dir):
  eval_task = seqio.get_mixture_or_task("xlsum_eval.zh")
  assert eval_task.splits == ("validation", "test")
  for split in eval_task.splits:
    get = lambda t: [ex["inputs"].tolist() for ex in t.get_dataset(  # pylint: disable=cell-var-from-loop
        LONG, split=split, shuffle=False).as_numpy_iterator()]
    assert get(eval_task) == get(seqio.get_mixture_or_task("xlsum.zh"))


def test_long_articles_are_truncated_with_eos(tfds_dir):
  task = seqio.get_mixture_or_task("xlsum.en")
  ex = next(task.get_dataset({"inputs": 12, "targets": 5}, split="validation",
                             shuffle=False).as_numpy_iterator())
  record = _records("english", "val")[0]
  assert ex["inputs"].tolist() == _encode("summarize: " + record["text"])[:11] + [1]
  assert ex["targets"].tolist() == _encode(record["summary"])[:4] + [1]


def test_metrics_are_rouge_plain_for_english_and_spm_otherwise(tiny_spm_path):
  (en_metric,) = seqio.get_mixture_or_task("xlsum.en").metric_fns
  (zh_metric,) = seqio.get_mixture_or_task("xlsum.zh").metric_fns
  target = "Heavy rain flooded the old market on Monday."
  assert en_metric([target], [target]) == pytest.approx(
      {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})
  # English is scored with plain ROUGE, so script-only text scores nothing.
  assert en_metric(["市中心"], ["市中心"])["rouge1"] == 0.0
  # Plain ROUGE drops Chinese characters; SentencePiece ROUGE does not.
  zh = "市中心的新公园周六正式开放。"
  assert zh_metric([zh], [zh])["rouge2"] == pytest.approx(100.0)
  assert zh_metric([zh], ["大雨导致多条道路关闭。"])["rouge2"] < 50.0


def test_mixing_rate_is_examples_proportional_with_optional_cap(tfds_dir):
  en = seqio.get_mixture_or_task("xlsum.en")
  assert xlsum.xlsum_mixing_rate(en) == 2.0
  with gin.unlock_config():
    gin.bind_parameter("lta_tasks.xlsum_mixing_rate.maximum", 1)
  assert xlsum.xlsum_mixing_rate(en) == 1.0


def test_per_language_subdirectories_are_found(tmp_path):
  manual = tmp_path / "manual" / "english"
  manual.mkdir(parents=True)
  for name in ("train", "val", "test"):
    shutil.copy(FIXTURES / "xlsum" / f"english_{name}.jsonl", manual)
  builder = _prepare(tmp_path / "data", tmp_path / "manual")
  assert builder.info.splits["train"].num_examples == 2


# ----------------------------- malformed input -----------------------------


def _manual_dir(tmp_path, train_lines):
  manual = tmp_path / "manual"
  manual.mkdir()
  for name in ("val", "test"):
    shutil.copy(FIXTURES / "xlsum" / f"english_{name}.jsonl", manual)
  (manual / "english_train.jsonl").write_bytes(b"\n".join(train_lines) + b"\n")
  return manual


def _good(i):
  return json.dumps({"id": f"a{i}", "url": "u", "title": "t",
                     "summary": f"summary {i}", "text": f"text {i}"}).encode()


BAD_LINES = {
    "missing field 'summary'": b'{"id": "x", "url": "u", "title": "t", "text": "x"}',
    "empty field 'text'": json.dumps({"id": "x", "url": "u", "title": "t",
                                      "summary": "s", "text": "  "}).encode(),
    "invalid UTF-8": b'{"id": "x", "url": "u", "title": "t", "summary": "\xff",'
                     b' "text": "x"}',
    "invalid JSON": b'{"id": "x", "url": ',
}


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_malformed_record_names_file_and_line(tmp_path, reason):
  manual = _manual_dir(tmp_path, [_good(0), _good(1), BAD_LINES[reason]])
  with pytest.raises(jsonl_records.MalformedRecordError) as error:
    _prepare(tmp_path / "data", manual)
  assert f"english_train.jsonl:3: {reason}" in str(error.value)


def test_malformed_records_are_skipped_and_counted_when_asked(tmp_path):
  manual = _manual_dir(tmp_path, [BAD_LINES["invalid UTF-8"], _good(0),
                                  BAD_LINES["missing field 'summary'"], _good(1)])
  builder = _prepare(tmp_path / "data", manual, skip_malformed=True)
  assert builder.info.splits["train"].num_examples == 2
  assert builder.info.metadata["skipped_malformed_train"] == 2
  assert builder.info.metadata["skipped_malformed_validation"] == 0
  reloaded = tfds.builder("xlsum/en:2.0.0", data_dir=str(tmp_path / "data"))
  assert reloaded.info.metadata["skipped_malformed_train"] == 2


def test_gin_binding_turns_on_skipping(tmp_path):
  manual = _manual_dir(tmp_path, [_good(0), BAD_LINES["invalid JSON"]])
  with gin.unlock_config():
    gin.bind_parameter("lta_tasks.skip_malformed_records.skip", True)
  builder = _prepare(tmp_path / "data", manual)
  assert builder.info.metadata["skipped_malformed_train"] == 1


def test_split_without_usable_records_is_an_error(tmp_path):
  manual = _manual_dir(tmp_path, [BAD_LINES["invalid JSON"]])
  with pytest.raises(jsonl_records.EmptyFileError, match="english_train.jsonl"):
    _prepare(tmp_path / "data", manual, skip_malformed=True)


def test_prepare_rejects_unknown_languages(tmp_path):
  with pytest.raises(ValueError, match="not XL-Sum languages: \\['english'\\]"):
    xlsum_builder.prepare(["english"], str(tmp_path))


def test_missing_split_file_is_named(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  shutil.copy(FIXTURES / "xlsum" / "english_train.jsonl", manual)
  with pytest.raises(errors.DataError, match="english_val.jsonl"):
    _prepare(tmp_path / "data", manual)


def test_package_registers_every_family():
  names = set(seqio.TaskRegistry.names())
  assert {"xlsum.en", "tydiqa_goldp.en", "mc4_prefix_lm.en"} <= names
  assert lta_tasks.xlsum is xlsum
