"""XQuAD as text-to-text: `xquad.<lang>` for its 11 languages.

Zero-shot from English SQuAD, as in XTREME: mixture `xquad_zeroshot`
trains on `xquad.en` and evaluates the validation/test-only
`xquad_eval.<lang>` of the other ten. Examples are those of TyDi QA
(`question: <question> context: <passage>` -> the first gold answer;
SQuAD F1/EM against every gold answer, `lta.eval.metrics.squad_f1_em`).

Where each split comes from (TFDS `squad/v1.1:3.0.0` and
`xquad/<lang>:3.0.0`, both with TFDS's SQuAD-like features):

  task          train                  validation            test
  xquad.en      SQuAD v1.1 train       SQuAD v1.1 dev        XQuAD en
  xquad.<lang>  XTREME translate-train XTREME translate-dev  XQuAD <lang>

XQuAD itself is a test set only; the other languages' train and
validation splits are XTREME's machine translations of SQuAD, which the
zero-shot protocol uses for selection only (validation) and the
target-language-data experiments for training. `prepare` writes them
offline from the release files.
"""

from __future__ import annotations

import functools
import os
from typing import Optional, Sequence

import seqio
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.question_answering import qa_utils
from tensorflow_datasets.question_answering import xquad as tfds_xquad

from lta import errors
from lta.data import input_pipeline
from lta.data import language_codes
from lta.data import vocab

from . import tydiqa

SQUAD_TFDS = "squad/v1.1:3.0.0"
XQUAD_VERSION = "3.0.0"
XQUAD_LANGS = tuple(tfds_xquad.LANGUAGES)  # ar de el en es hi ru th tr vi zh

# Release file of each TFDS split, as TFDS's builders download them.
SQUAD_FILES = {"train": "train-v1.1.json", "validation": "dev-v1.1.json"}


def xquad_files(lang: str) -> dict[str, str]:
  """TFDS split of `xquad/<lang>` -> its release file name."""
  files = {"test": f"xquad.{lang}.json"}
  if lang != "en":
    files.update({
        "translate-train": f"squad.translate.train.en-{lang}.json",
        "translate-dev": f"squad.translate.dev.en-{lang}.json",
        "translate-test": f"xquad.translate.test.{lang}-en.json"})
  return files


def xquad_tfds_name(lang: str) -> str:
  return f"xquad/{lang}:{XQUAD_VERSION}"


def task_name(lang: str) -> str:
  return f"xquad.{lang}"


def eval_task_name(lang: str) -> str:
  return f"xquad_eval.{lang}"


def splits(lang: str) -> dict[str, tuple[str, str]]:
  """Task split -> (TFDS name, TFDS split): the module docstring's table."""
  xquad = xquad_tfds_name(lang)
  if lang == "en":
    return {"train": (SQUAD_TFDS, "train"),
            "validation": (SQUAD_TFDS, "validation"), "test": (xquad, "test")}
  return {"train": (xquad, "translate-train"),
          "validation": (xquad, "translate-dev"), "test": (xquad, "test")}


class TfdsSplitsSource(seqio.DataSource):
  """Each split from its own TFDS dataset, all in the one data dir.

  seqio's TfdsDataSource takes splits of several datasets
  (seqio.TfdsSplit) but then ignores the data-dir override that
  --tfds_data_dir sets, and would download a missing dataset; here every
  split is a read-only TfdsDataSource of one dataset, which honours it.
  """

  def __init__(self, split_map: dict[str, tuple[str, str]]):
    self._split_map = dict(split_map)
    self._sources = {
        split: seqio.TfdsDataSource(tfds_name=name, splits={split: tfds_split},
                                    read_only=True)
        for split, (name, tfds_split) in split_map.items()}
    super().__init__(splits=tuple(split_map))

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split: str):
    return self._sources[split].list_shards(split)

  def num_input_examples(self, split: str):
    return self._sources[split].num_input_examples(split)

  def get_dataset(self, split: str = "train", shuffle: bool = True,
                  seed=None, shard_info=None, *, sequence_length=None,
                  use_cached=False, num_epochs=1):
    del sequence_length, use_cached, num_epochs  # as TfdsDataSource
    return self._sources[split].get_dataset(
        split, shuffle=shuffle, seed=seed, shard_info=shard_info)

  def check_prepared(self, split: str) -> None:
    """input_pipeline.check_task's hook: a DataError naming what is missing."""
    name, tfds_split = self._split_map[split]
    loader = self._sources[split].tfds_dataset
    input_pipeline.check_tfds_prepared(
        f"split {split!r} ({name} {tfds_split!r})", name, loader.data_dir,
        tfds_split)


def _add_task(name: str, lang: str, split_names: Sequence[str]) -> None:
  all_splits = splits(lang)
  seqio.TaskRegistry.add(
      name,
      source=TfdsSplitsSource({s: all_splits[s] for s in split_names}),
      preprocessors=[
          tydiqa.question_context,
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          functools.partial(language_codes.add_language_codes, lang=lang),
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=vocab.output_features(),
      postprocess_fn=tydiqa.qa_postprocess,
      metric_fns=[tydiqa.squad],
  )


for _lang in XQUAD_LANGS:
  _add_task(task_name(_lang), _lang, ("train", "validation", "test"))
  _add_task(eval_task_name(_lang), _lang, ("validation", "test"))

seqio.MixtureRegistry.add(
    "xquad_zeroshot",
    [task_name("en")] + [eval_task_name(l) for l in XQUAD_LANGS if l != "en"],
    default_rate=1.0)


# ------------------------------------------------------------ preparing --


def write_dataset(tfds_name: str, data_dir: str,
                  files: dict[str, str]) -> dict:
  """Writes TFDS `tfds_name` from SQuAD-format files ({split: path}, an
  entry of `find_files`) with TFDS's own parser and writer; returns
  {split: examples}."""
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  examples = {split: [example for _, example in
                      qa_utils.generate_squadlike_examples(path)]
              for split, path in files.items()}
  tf.io.gfile.makedirs(builder.info.data_dir)
  writer = tfds.core.SequentialWriter(
      builder.info, max_examples_per_shard=10_000, overwrite=True)
  writer.initialize_splits(list(examples), fail_if_exists=False)
  writer.add_examples(examples)
  writer.close_all()
  return {split: len(rows) for split, rows in examples.items()}


def languages_in(source_dir: str) -> list[str]:
  """The XQuAD languages whose test file `xquad.<lang>.json` is in
  `source_dir`, in XQUAD_LANGS order."""
  return [lang for lang in XQUAD_LANGS if tf.io.gfile.exists(
      os.path.join(source_dir, xquad_files(lang)["test"]))]


def find_files(source_dir: str,
               languages: Optional[Sequence[str]] = None
               ) -> dict[str, dict[str, str]]:
  """{tfds name: {split: release file}} for SQuAD v1.1 and each language's
  XQuAD, checked before anything is written.

  SQuAD's two files and each language's `xquad.<lang>.json` are required;
  XTREME's translate-* files are taken where present.

  Raises:
    ConfigError: a language XQuAD does not have.
    MissingFileError: a required file, named.
  """
  languages = XQUAD_LANGS if languages is None else tuple(languages)
  for lang in languages:
    if lang not in XQUAD_LANGS:
      raise errors.ConfigError(
          f"XQuAD has no language {lang!r}"
          f"{errors.did_you_mean(lang, XQUAD_LANGS)} (one of"
          f" {', '.join(XQUAD_LANGS)})")
  plan = {SQUAD_TFDS: dict(SQUAD_FILES)}
  for lang in languages:
    plan[xquad_tfds_name(lang)] = xquad_files(lang)
  found = {}
  for name, files in plan.items():
    required = [s for s in files if s in ("train", "validation", "test")]
    paths = {s: os.path.join(source_dir, f) for s, f in files.items()}
    missing = [paths[s] for s in required if not tf.io.gfile.exists(paths[s])]
    if missing:
      raise errors.MissingFileError(
          f"XQuAD: {missing[0]} is missing ({name} needs"
          f" {', '.join(files[s] for s in required)} in {source_dir})")
    found[name] = {s: p for s, p in paths.items() if tf.io.gfile.exists(p)}
  return found


def prepare(data_dir: str, source_dir: str,
            languages: Optional[Sequence[str]] = None) -> dict[str, dict]:
  """Prepares SQuAD v1.1 and XQuAD offline from release files in
  `source_dir` (names: SQUAD_FILES, `xquad_files(lang)`; `find_files`).

  Returns {tfds name: {split: examples}}.
  """
  found = find_files(source_dir, languages)
  # Everything was found before anything is written.
  return {name: write_dataset(name, data_dir, files)
          for name, files in found.items()}
