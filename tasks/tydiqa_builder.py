"""Prepares TFDS `tydi_qa/goldp:3.0.0`, the data of the `tydiqa_goldp` tasks.

Two ways, both ending in the TFDS dataset the tasks read:

* `prepare(data_dir)`: TFDS's own builder downloads the GoldP v1.1 release
  (and the XTREME translations it also packs) and prepares every split;
  this needs the network.
* `prepare(data_dir, source_dir=DIR)`: offline, from the GoldP release files
  `tydiqa-goldp-v1.1-train.json` and `tydiqa-goldp-v1.1-dev.json` (SQuAD
  format, as TFDS downloads them) in DIR. Every question is validated (see
  `read_goldp_file`) and the `train` and `validation` splits, the two the
  tasks read, are written with TFDS's writer under the builder's own
  features, so the result reads like TFDS's; the per-language and
  translate-train splits are not written.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Optional

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.question_answering import tydi_qa

from lta import errors

from . import jsonl_records

TFDS_NAME = "tydi_qa/goldp:3.0.0"
# TFDS split -> release file.
RELEASE_FILES = {"train": "tydiqa-goldp-v1.1-train.json",
                 "validation": "tydiqa-goldp-v1.1-dev.json"}
LANGUAGE_NAMES = tuple(tydi_qa.LANGUAGES.values())


@dataclasses.dataclass
class GoldpStats:
  questions: int = 0
  skipped: int = 0


class _Bad(ValueError):
  """A malformed part of the file; the message starts with its JSON path."""


def _need(value, kind, where: str, nonempty: bool = False):
  if not isinstance(value, kind) or isinstance(value, bool):
    got = "nothing" if value is None else type(value).__name__
    raise _Bad(f"{where}: expected {kind.__name__}, got {got}")
  if isinstance(value, str):
    try:
      value.encode("utf-8")
    except UnicodeEncodeError as e:
      raise _Bad(f"{where}: lone surrogate ({value[e.start]!r}) at character"
                 f" {e.start}") from None
    if nonempty and not value.strip():
      raise _Bad(f"{where}: empty")
  if isinstance(value, list) and nonempty and not value:
    raise _Bad(f"{where}: empty list")
  return value


def _question(qa, context: str, title: str, where: str) -> dict:
  _need(qa, dict, where)
  qid = _need(qa.get("id"), str, f"{where}.id", nonempty=True)
  language = qid.split("-", 1)[0]
  if language not in LANGUAGE_NAMES:
    raise _Bad(f"{where}.id: {qid!r} does not start with a TyDi QA language"
               f" name and '-'{errors.did_you_mean(language, LANGUAGE_NAMES)}"
               f" (one of {sorted(LANGUAGE_NAMES)})")
  question = _need(qa.get("question"), str, f"{where}.question", True)
  answers = _need(qa.get("answers"), list, f"{where}.answers", True)
  texts, starts = [], []
  for j, answer in enumerate(answers):
    at = f"{where}.answers[{j}]"
    _need(answer, dict, at)
    texts.append(_need(answer.get("text"), str, f"{at}.text", True))
    start = _need(answer.get("answer_start"), int, f"{at}.answer_start")
    if not 0 <= start < len(context):
      raise _Bad(f"{at}.answer_start: {start} is outside the context"
                 f" ({len(context)} characters)")
    starts.append(start)
  return {"id": qid, "title": title, "context": context, "question": question,
          "answers": {"text": texts, "answer_start": starts}}


def _load_json(path: str):
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except tf.errors.OpError as e:
    raise errors.DataError(f"{path}: cannot be read ({e.message})") from None
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise errors.DataError(
        f"{path}:{line}: invalid UTF-8 at byte {e.start}") from None
  try:
    return jsonl_records.parse_json_text(text)
  except jsonl_records.JsonError as e:
    line = f":{e.line}" if e.line else ""
    raise errors.DataError(f"{path}{line}: {e}") from None


def _questions(articles) -> Iterator[dict | _Bad]:
  """Each question's example, or the _Bad that makes it (or its article or
  paragraph, given once) unusable."""
  for a, article in enumerate(articles):
    where = f"data[{a}]"
    try:
      _need(article, dict, where)
      title = _need(article.get("title", ""), str, f"{where}.title")
      paragraphs = _need(article.get("paragraphs"), list,
                         f"{where}.paragraphs", True)
    except _Bad as e:
      yield e
      continue
    for p, paragraph in enumerate(paragraphs):
      at = f"{where}.paragraphs[{p}]"
      try:
        _need(paragraph, dict, at)
        context = _need(paragraph.get("context"), str, f"{at}.context", True)
        qas = _need(paragraph.get("qas"), list, f"{at}.qas", True)
      except _Bad as e:
        yield e
        continue
      for q, qa in enumerate(qas):
        try:
          example = _question(qa, context, title, f"{at}.qas[{q}]")
        except _Bad as e:
          example = e
        yield example


def read_goldp_file(path: str, skip_malformed: bool = False,
                    stats: Optional[GoldpStats] = None
                    ) -> Iterator[tuple[str, dict]]:
  """(id, example) of a GoldP SQuAD-format file, as TFDS parses it.

  Every question must have an id `<language name>-...` of a TyDi QA
  language, a non-empty question and at least one answer (non-empty text,
  an `answer_start` inside the context); every string must be valid
  Unicode. A malformed question (or paragraph, or article) is a DataError
  naming the file and its JSON path, or is skipped and counted when
  `skip_malformed`. Answers of a repeated id are merged, as TFDS does.
  """
  stats = stats if stats is not None else GoldpStats()
  root = _load_json(path)
  try:
    articles = _need(_need(root, dict, "top level").get("data"), list,
                     "data", nonempty=True)
  except _Bad as e:
    raise errors.DataError(f"{path}: {e}") from None
  merged: dict[str, dict] = {}
  for example in _questions(articles):
    if isinstance(example, _Bad):
      if not skip_malformed:
        raise errors.DataError(
            f"{path}: {example} {jsonl_records.SKIP_HINT}") from None
      logging.warning("Skipping malformed TyDi QA entry %s: %s", path,
                      example)
      stats.skipped += 1
    elif example["id"] in merged:
      for key in ("text", "answer_start"):
        merged[example["id"]]["answers"][key] += example["answers"][key]
    else:
      merged[example["id"]] = example
  if not merged:
    raise errors.DataError(f"{path}: no usable questions ({stats.skipped}"
                           " malformed skipped)")
  stats.questions = len(merged)
  yield from merged.items()


def prepare(data_dir: str, source_dir: Optional[str] = None,
            skip_malformed: bool = False) -> dict[str, GoldpStats]:
  """Prepares TFDS tydi_qa/goldp:3.0.0 in `data_dir`; stats per split."""
  builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
  if source_dir is None:
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      raise errors.DataError(
          f"TyDi QA: TFDS could not download and prepare {TFDS_NAME} in"
          f" {data_dir} ({type(e).__name__}: {str(e).splitlines()[0]}); give"
          " the GoldP release files with --tydiqa_dir instead") from e
    return {split: GoldpStats(questions=info.num_examples)
            for split, info in builder.info.splits.items()}
  stats = {split: GoldpStats() for split in RELEASE_FILES}
  examples = {}
  for split, name in RELEASE_FILES.items():
    path = os.path.join(source_dir, name)
    if not tf.io.gfile.exists(path):
      raise errors.DataError(
          f"TyDi QA: {path} is missing; --tydiqa_dir must hold"
          f" {sorted(RELEASE_FILES.values())}")
    examples[split] = [example for _, example in read_goldp_file(
        path, skip_malformed, stats[split])]
  # Everything was validated before anything is written.
  tf.io.gfile.makedirs(builder.info.data_dir)
  writer = tfds.core.SequentialWriter(builder.info, max_examples_per_shard=
                                      10_000, overwrite=True)
  writer.initialize_splits(list(examples), fail_if_exists=False)
  writer.add_examples(examples)
  writer.close_all()
  return stats
