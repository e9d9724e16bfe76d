"""TFDS builder for XL-Sum v2.0 (Hasan et al., 2021): 45 languages.

TFDS 4.9.10 has no XL-Sum, so this builder reads the official release: one
archive per language that holds `<language>_{train,val,test}.jsonl`, where
`<language>` is the release's full name (`english`, `chinese_simplified`,
`serbian_cyrillic`, ...) and each line is a JSON object with id, url, title,
summary and text.

Put the extracted files in the TFDS manual directory (flat, or one
subdirectory per language), or let the builder download the archive:

  builder = tfds.builder("xlsum/en:2.0.0", data_dir=...)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=...))

Configs are named by the ISO 639-1 code used in task names (`xlsum/zh`),
with `zh_tw`, `sr_cyrl`, `sr_latn` and `pcm` where one code is not enough.
"""

import os
from typing import Optional

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from lta import errors

from . import jsonl_records

# ISO code (task name) -> language name in the release file names.
XLSUM_LANGUAGES = {
    "am": "amharic",
    "ar": "arabic",
    "az": "azerbaijani",
    "bn": "bengali",
    "my": "burmese",
    "zh": "chinese_simplified",
    "zh_tw": "chinese_traditional",
    "en": "english",
    "fr": "french",
    "gu": "gujarati",
    "ha": "hausa",
    "hi": "hindi",
    "ig": "igbo",
    "id": "indonesian",
    "ja": "japanese",
    "rn": "kirundi",
    "ko": "korean",
    "ky": "kyrgyz",
    "mr": "marathi",
    "ne": "nepali",
    "om": "oromo",
    "ps": "pashto",
    "fa": "persian",
    "pcm": "pidgin",
    "pt": "portuguese",
    "pa": "punjabi",
    "ru": "russian",
    "gd": "scottish_gaelic",
    "sr_cyrl": "serbian_cyrillic",
    "sr_latn": "serbian_latin",
    "si": "sinhala",
    "so": "somali",
    "es": "spanish",
    "sw": "swahili",
    "ta": "tamil",
    "te": "telugu",
    "th": "thai",
    "ti": "tigrinya",
    "tr": "turkish",
    "uk": "ukrainian",
    "ur": "urdu",
    "uz": "uzbek",
    "vi": "vietnamese",
    "cy": "welsh",
    "yo": "yoruba",
}

# TFDS split -> suffix of the release file.
_SPLIT_FILES = {"train": "train", "validation": "val", "test": "test"}

_FIELDS = ("id", "url", "title", "summary", "text")

_ARCHIVE_URL = (
    "https://huggingface.co/datasets/csebuetnlp/xlsum/resolve/main/data/"
    "{language}_XLSum_v2.0.tar.bz2"
)


class XlsumConfig(tfds.core.BuilderConfig):
  """One XL-Sum language."""

  def __init__(self, *, release_name: str, **kwargs):
    super().__init__(**kwargs)
    self.release_name = release_name


class QuietPreparation:
  """Mixin for builders of local release files.

  TFDS prints "Downloading and preparing dataset Unknown size ..." and a
  "downloaded" line on stdout; the files are usually local and their size is
  unknown, so both go to the log instead.
  """

  def _log_download_bytes(self) -> None:
    logging.info("Preparing %s in %s", self.info.full_name, self.data_dir)

  def _log_download_done(self) -> None:
    logging.info("Prepared %s in %s", self.info.full_name, self.data_dir)


class Xlsum(QuietPreparation, tfds.core.GeneratorBasedBuilder):
  """XL-Sum: BBC articles with one-sentence summaries in 45 languages."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"2.0.0": "XL-Sum v2.0 release (45 languages)."}
  BUILDER_CONFIGS = [
      XlsumConfig(
          name=code,
          release_name=language,
          description=f"XL-Sum {language} ({code}).",
      )
      for code, language in XLSUM_LANGUAGES.items()
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Extract the XL-Sum v2.0 files `<language>_{train,val,test}.jsonl` (e.g.
  `english_train.jsonl`, `chinese_simplified_val.jsonl`) into the manual
  directory, flat or under `<language>/`. Languages missing there are
  downloaded from the Hugging Face copy of the release.
  """

  def __init__(self, *, skip_malformed: Optional[bool] = None, **kwargs):
    """Builder; `skip_malformed=None` reads gin's `skip_malformed_records`."""
    self._skip_malformed = skip_malformed
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {field: tfds.features.Text() for field in _FIELDS}
        ),
        supervised_keys=("text", "summary"),
        homepage="https://github.com/csebuetnlp/xl-sum",
        metadata=tfds.core.MetadataDict(),
    )

  def _release_files(self, dl_manager) -> dict[str, epath.Path]:
    language = self.builder_config.release_name
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError:  # No manual directory, or an empty one.
      manual_dir = None
    if manual_dir is not None:
      found = find_release_files(manual_dir, self.builder_config.name)
      if found is not None:
        return found
    url = _ARCHIVE_URL.format(language=language)
    try:
      directory = epath.Path(dl_manager.download_and_extract(url))
    except Exception as e:  # pylint: disable=broad-except
      raise errors.DataError(
          f"XL-Sum '{language}': no {language}_train.jsonl in"
          f" {manual_dir or 'a manual directory (none given)'}, and"
          f" downloading {url} failed: {str(e).splitlines()[0]}") from e
    found = find_release_files(directory, self.builder_config.name)
    if found is None:
      raise errors.DataError(f"XL-Sum '{language}': {url} holds no"
                             f" {language}_train.jsonl")
    return found

  def _split_generators(self, dl_manager):
    skip = self._skip_malformed
    if skip is None:
      skip = jsonl_records.skip_malformed_records()
    return {
        split: self._generate_examples(path, split, skip)
        for split, path in self._release_files(dl_manager).items()
    }

  def _generate_examples(self, path, split: str, skip: bool):
    stats = jsonl_records.ReadStats()
    for index, record in enumerate(
        jsonl_records.read_json_lines(
            os.fspath(path),
            required=_FIELDS,
            nonempty=("summary", "text"),
            skip_malformed=skip,
            stats=stats,
        )
    ):
      # Line order, not the article id: ids are not promised to be unique.
      yield index, {field: record[field] for field in _FIELDS}
    self.info.metadata[f"skipped_malformed_{split}"] = stats.skipped_records


def find_release_files(directory, code: str) -> Optional[dict[str, epath.Path]]:
  """Split -> release file of language `code` in `directory` (flat, or under
  `<language>/`); None when neither holds any.

  Raises:
    DataError: some but not all of the three split files are there.
  """
  language = XLSUM_LANGUAGES[code]
  names = {s: f"{language}_{f}.jsonl" for s, f in _SPLIT_FILES.items()}
  for candidate in (epath.Path(directory), epath.Path(directory) / language):
    paths = {s: candidate / n for s, n in names.items()}
    present = {s: p.exists() for s, p in paths.items()}
    if all(present.values()):
      return paths
    if any(present.values()):
      missing = [os.fspath(p) for s, p in paths.items() if not present[s]]
      raise errors.DataError(f"XL-Sum split files missing: {missing}")
  return None


def prepare(
    languages,
    data_dir: Optional[str] = None,
    manual_dir: Optional[str] = None,
    skip_malformed: Optional[bool] = None,
    overwrite: bool = False,
) -> list[Xlsum]:
  """Builds the TFDS data of `languages` (ISO codes) once, for the tasks.

  Data already prepared is kept unless `overwrite`. Returns the builders.
  """
  unknown = sorted(set(languages) - set(XLSUM_LANGUAGES))
  if unknown:
    raise errors.DataError(
        f"not XL-Sum languages: {unknown}"
        f"{errors.did_you_mean(unknown[0], XLSUM_LANGUAGES)}; known:"
        f" {sorted(XLSUM_LANGUAGES)}")
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite else
          tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  builders = []
  for code in languages:
    builder = Xlsum(
        config=code, data_dir=data_dir, skip_malformed=skip_malformed
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir, download_mode=mode))
    builders.append(builder)
  return builders
