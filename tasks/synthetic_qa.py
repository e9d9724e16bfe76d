"""The synthetic world's QA task (lta.synthetic.qa): `synthetic_qa.<lang>`.

The TyDi QA analogue of the miniature (docs/miniature.md, Table 4). The
world writes SQuAD v1.1 files, `<code>-{train,validation,test}.json`;
`prepare` turns them into TFDS `synthetic_qa/<code>:1.0.0` with TFDS's own
SQuAD parser and features. The tasks read them as TyDi QA GoldP is read
(`question: <question> context: <passage>` -> the answer; SQuAD F1/EM,
lta.eval.metrics), and `synthetic_qa_prompt.<lang>` is the decoder-only
twin (the TyDi QA prompt). Every code a synthetic language may take has a
task; only the prepared ones have data.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import seqio
import tensorflow_datasets as tfds
from tensorflow_datasets.question_answering import qa_utils

from lta import errors
from lta.data import decoder_only
from lta.data import language_codes
from lta.data import vocab
from lta.synthetic import languages as synthetic_languages
from lta.synthetic import qa as synthetic_qa

from . import tydiqa
from . import xlsum_builder

TFDS_VERSION = "1.0.0"
SPLITS = tuple(synthetic_qa.SPLITS)
LANGS = tuple(synthetic_languages.XLSUM_RELEASE_NAMES)


def tfds_name(lang: str) -> str:
  return f"synthetic_qa/{lang}:{TFDS_VERSION}"


def task_name(lang: str) -> str:
  return f"synthetic_qa.{lang}"


def prompt_task_name(lang: str) -> str:
  return f"synthetic_qa_prompt.{lang}"


class SyntheticQa(xlsum_builder.QuietPreparation,
                  tfds.core.GeneratorBasedBuilder):
  """Questions about the synthetic world's documents, answers are spans."""

  VERSION = tfds.core.Version(TFDS_VERSION)
  RELEASE_NOTES = {TFDS_VERSION: "lta.synthetic.qa format 1."}
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=code) for code in LANGS]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  The directory lta.synthetic.qa.write_qa_files wrote: SQuAD v1.1 files
  `<code>-{train,validation,test}.json`.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=qa_utils.squadlike_features(),
        supervised_keys=None, homepage="docs/synthetic_world.md")

  def _split_generators(self, dl_manager):
    code = self.builder_config.name
    paths = {s: os.path.join(dl_manager.manual_dir,
                             synthetic_qa.squad_file_name(code, s))
             for s in SPLITS}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
      raise errors.MissingFileError(
          f"synthetic QA {code!r}: {missing[0]} is missing")
    return {s: self._generate_examples(p) for s, p in paths.items()}

  def _generate_examples(self, path):
    yield from qa_utils.generate_squadlike_examples(path)


def prepare(languages: Sequence[str], data_dir: str, manual_dir: str,
            overwrite: bool = False) -> None:
  """Builds TFDS synthetic_qa of `languages` from `manual_dir`'s files."""
  unknown = sorted(set(languages) - set(LANGS))
  if unknown:
    raise errors.ConfigError(
        f"no synthetic QA language {unknown[0]!r}"
        f"{errors.did_you_mean(unknown[0], LANGS)}")
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite else
          tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  for code in languages:
    SyntheticQa(config=code, data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir, download_mode=mode))


@seqio.map_over_dataset
def qa_prompt(x):
  return {"inputs": decoder_only.PROMPTS["tydiqa_goldp"].render(x),
          "targets": x["answers"]["text"][0], "id": x["id"],
          "answers": x["answers"]["text"]}


def _add_task(name: str, lang: str, preprocessors, output_features) -> None:
  seqio.TaskRegistry.add(
      name,
      source=seqio.TfdsDataSource(tfds_name=tfds_name(lang), splits=SPLITS),
      preprocessors=preprocessors, output_features=output_features,
      postprocess_fn=tydiqa.qa_postprocess, metric_fns=[tydiqa.squad])


for _lang in LANGS:
  # As tydiqa_goldp.<lang> and its decoder-only twin read TyDi QA.
  _add_task(task_name(_lang), _lang, [
      tydiqa.question_context, seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      functools.partial(language_codes.add_language_codes, lang=_lang),
      seqio.preprocessors.append_eos_after_trim], vocab.output_features())
  _add_task(prompt_task_name(_lang), _lang, [
      qa_prompt, seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      seqio.preprocessors.append_eos_after_trim],
            decoder_only.output_features())
