"""`lta prepare-data`: the data of every task family, prepared and checked.

  XL-Sum   TFDS `xlsum/<lang>:2.0.0`, built by `xlsum_builder` from the
           release files in a manual directory;
  mC4      an index of local json.gz shards, every record validated
           (`mc4_index`), read by `mc4_prefix_lm.<lang>`;
  TyDi QA  TFDS `tydi_qa/goldp:3.0.0`, downloaded by TFDS or built offline
           from the GoldP release files (`tydiqa_builder`);
  XQuAD    TFDS `squad/v1.1:3.0.0` and `xquad/<lang>:3.0.0`, built offline
           from the SQuAD, XQuAD and XTREME release files (`xquad`).

Everything goes to one TFDS data directory, so `--tfds_data_dir` (or
TFDS_DATA_DIR) alone points training and evaluation at it. `plan` checks
the vocabulary against the model and that every source file is there before
anything slow starts; `run` then prepares each dataset and says where.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import tensorflow as tf
import tensorflow_datasets as tfds

from lta import errors
from lta.data import vocab
from lta.languages.related import XLSUM_SEEN, XLSUM_UNSEEN

from . import mc4_index
from . import tydiqa_builder
from . import xlsum
from . import xlsum_builder
from . import xquad

# Names accepted for --xlsum_languages besides ISO codes.
XLSUM_LANGUAGE_SETS = {"seen": XLSUM_SEEN, "unseen": XLSUM_UNSEEN,
                       "all": xlsum.XLSUM_LANGS}


@dataclasses.dataclass
class Request:
  """What to prepare; None or empty leaves a family out."""
  tfds_data_dir: str
  xlsum_manual_dir: Optional[str] = None
  xlsum_languages: Sequence[str] = ()
  mc4_dir: Optional[str] = None
  mc4_languages: Sequence[str] = ()
  tydiqa: bool = False
  tydiqa_dir: Optional[str] = None
  xquad_dir: Optional[str] = None
  xquad_languages: Sequence[str] = ()
  vocab_path: str = vocab.MT5_SPM_PATH
  model_gin_file: Optional[str] = None
  initial_checkpoint_path: Optional[str] = None
  skip_malformed: bool = False
  overwrite: bool = False


@dataclasses.dataclass
class Prepared:
  """One prepared dataset: where it is and how many examples per split."""
  name: str
  location: str
  examples: dict[str, int]
  skipped: int = 0
  note: str = ""

  def line(self) -> str:
    counts = ", ".join(f"{n:,} {s}" for s, n in self.examples.items())
    skipped = f"; {self.skipped:,} malformed skipped" if self.skipped else ""
    note = f"; {self.note}" if self.note else ""
    return f"{self.name}: {counts} -> {self.location}{skipped}{note}"


def _xlsum_languages(request: Request) -> list[str]:
  names = []
  for name in request.xlsum_languages:
    names += XLSUM_LANGUAGE_SETS.get(name, (name,))
  unknown = [n for n in names if n not in xlsum_builder.XLSUM_LANGUAGES]
  if unknown:
    raise errors.ConfigError(
        f"--xlsum_languages: {unknown[0]!r} is not an XL-Sum language code"
        f"{errors.did_you_mean(unknown[0], xlsum_builder.XLSUM_LANGUAGES)}"
        f" (or one of {sorted(XLSUM_LANGUAGE_SETS)})")
  if names or not request.xlsum_manual_dir:
    return list(dict.fromkeys(names))
  # None asked for: every language whose release files are there.
  return [code for code in xlsum_builder.XLSUM_LANGUAGES
          if xlsum_builder.find_release_files(request.xlsum_manual_dir, code)]


def _mc4_languages(request: Request) -> list[str]:
  if request.mc4_languages:
    return list(dict.fromkeys(request.mc4_languages))
  names = tf.io.gfile.glob(os.path.join(request.mc4_dir,
                                        "c4-*.tfrecord-*.json.gz"))
  return sorted({os.path.basename(n)[3:].split(".tfrecord")[0]
                 .removesuffix("-validation") for n in names})


@dataclasses.dataclass
class Plan:
  request: Request
  vocabulary: vocab.ModelVocabulary
  vocabulary_pieces: int
  xlsum_languages: list[str]
  mc4_languages: list[str]
  # {tfds name: {split: release file}} (xquad.find_files); empty: none.
  xquad_files: dict[str, dict[str, str]] = dataclasses.field(
      default_factory=dict)

  def lines(self) -> list[str]:
    return [f"Vocabulary {self.request.vocab_path}:"
            f" {self.vocabulary_pieces:,} ids, fits the model's"
            f" {self.vocabulary.rows:,} embedding rows"
            f" ({self.vocabulary.source})"]


def plan(request: Request) -> Plan:
  """Checks the vocabulary, the model and every source; reads no data.

  Raises:
    LtaError: the first problem found, in one line.
  """
  if not (request.xlsum_manual_dir or request.xlsum_languages or
          request.mc4_dir or request.tydiqa or request.xquad_dir):
    raise errors.ConfigError(
        "nothing to prepare: give --xlsum_manual_dir (and/or"
        " --xlsum_languages), --mc4_dir, --tydiqa or --xquad_dir")
  model = vocab.model_vocabulary(request.model_gin_file,
                                 request.initial_checkpoint_path)
  vocabulary = vocab.load_checked(request.vocab_path)
  vocab.check_fits_model(vocabulary, model)
  for flag, directory in (("--xlsum_manual_dir", request.xlsum_manual_dir),
                          ("--mc4_dir", request.mc4_dir),
                          ("--tydiqa_dir", request.tydiqa_dir),
                          ("--xquad_dir", request.xquad_dir)):
    if directory and not tf.io.gfile.isdir(directory):
      raise errors.MissingFileError(f"{flag}={directory!r} is not a directory")
  xlsum_languages = _xlsum_languages(request)
  if request.xlsum_manual_dir:
    if not xlsum_languages:
      raise errors.DataError(
          f"--xlsum_manual_dir={request.xlsum_manual_dir!r} holds no XL-Sum"
          " release files (<language>_{train,val,test}.jsonl)")
    for code in xlsum_languages:
      if xlsum_builder.find_release_files(request.xlsum_manual_dir,
                                          code) is None:
        language = xlsum_builder.XLSUM_LANGUAGES[code]
        raise errors.DataError(
            f"XL-Sum '{code}': no {language}_train.jsonl in"
            f" {request.xlsum_manual_dir} (nor under {language}/); omit"
            " --xlsum_manual_dir to download the release instead")
  mc4_languages = []
  if request.mc4_dir:
    mc4_languages = _mc4_languages(request)
    if not mc4_languages:
      raise errors.DataError(
          f"--mc4_dir={request.mc4_dir!r} holds no mC4 shards"
          " (c4-<lang>.tfrecord-XXXXX-of-YYYYY.json.gz)")
    for lang in mc4_languages:
      mc4_index.check_sources(request.mc4_dir, lang)
  elif request.mc4_languages:
    raise errors.ConfigError("--mc4_languages needs --mc4_dir")
  if request.tydiqa_dir and not request.tydiqa:
    raise errors.ConfigError("--tydiqa_dir needs --tydiqa")
  return Plan(request, model, vocabulary.vocab_size, xlsum_languages,
              mc4_languages, _xquad_files(request))


def _xquad_files(request: Request) -> dict[str, dict[str, str]]:
  if not request.xquad_dir:
    if request.xquad_languages:
      raise errors.ConfigError("--xquad_languages needs --xquad_dir")
    return {}
  languages = (list(dict.fromkeys(request.xquad_languages)) or
               xquad.languages_in(request.xquad_dir))
  if not languages:
    raise errors.MissingFileError(
        f"--xquad_dir={request.xquad_dir!r} holds no XQuAD test file"
        f" (xquad.<lang>.json, <lang> one of {', '.join(xquad.XQUAD_LANGS)})")
  return xquad.find_files(request.xquad_dir, languages)


def _prepare_xlsum(plan_: Plan) -> list[Prepared]:
  request = plan_.request
  kept = {code for code in plan_.xlsum_languages if not request.overwrite and
          xlsum_builder.Xlsum(config=code, data_dir=request.tfds_data_dir
                              ).is_prepared()}
  builders = xlsum_builder.prepare(
      plan_.xlsum_languages, request.tfds_data_dir, request.xlsum_manual_dir,
      request.skip_malformed, request.overwrite)
  out = []
  for code, builder in zip(plan_.xlsum_languages, builders):
    metadata = builder.info.metadata or {}
    out.append(Prepared(
        f"XL-Sum {code}", os.fspath(builder.data_path),
        {s: builder.info.splits[s].num_examples for s in xlsum.SPLITS},
        skipped=sum(v for k, v in metadata.items()
                    if k.startswith("skipped_malformed_")),
        note="already prepared, kept (--overwrite rebuilds)" if code in kept
        else ""))
  return out


def _prepare_mc4(plan_: Plan) -> list[Prepared]:
  request = plan_.request
  out = []
  for lang in plan_.mc4_languages:
    index = mc4_index.build(request.mc4_dir, lang, request.tfds_data_dir,
                            request.skip_malformed)
    corrupt = sum(len(c) for c in index.corrupt.values())
    shards = sum(len(s) for s in index.shards.values())
    note = f"{shards} shards of {index.mc4_dir}"
    if corrupt:
      note += f"; {corrupt} corrupt shards left out"
    if not index.shards["validation"]:
      note += "; no validation shards"
    out.append(Prepared(
        f"mC4 {lang}", index.path,
        {s: index.records(s) for s in mc4_index.SPLITS},
        skipped=sum(index.skipped_records(s) for s in mc4_index.SPLITS),
        note=note))
  return out


def _prepare_tydiqa(plan_: Plan) -> Prepared:
  request = plan_.request
  builder = tfds.builder(tydiqa_builder.TFDS_NAME,
                         data_dir=request.tfds_data_dir)
  if builder.is_prepared() and not request.overwrite:
    return Prepared("TyDi QA GoldP", os.fspath(builder.data_path),
                    {s: builder.info.splits[s].num_examples
                     for s in ("train", "validation")},
                    note="already prepared, kept (--overwrite rebuilds)")
  stats = tydiqa_builder.prepare(request.tfds_data_dir, request.tydiqa_dir,
                                 request.skip_malformed)
  source = (f"from {request.tydiqa_dir}" if request.tydiqa_dir
            else "downloaded by TFDS")
  return Prepared(
      "TyDi QA GoldP", os.fspath(builder.data_path),
      {s: stats[s].questions for s in ("train", "validation")},
      skipped=sum(s.skipped for s in stats.values()), note=source)


def _prepare_xquad(plan_: Plan) -> list[Prepared]:
  request = plan_.request
  out = []
  for name, files in plan_.xquad_files.items():
    builder = tfds.builder(name, data_dir=request.tfds_data_dir)
    label = ("SQuAD v1.1" if name == xquad.SQUAD_TFDS
             else f"XQuAD {builder.builder_config.name}")
    if builder.is_prepared() and not request.overwrite:
      out.append(Prepared(
          label, os.fspath(builder.data_path),
          {s: info.num_examples for s, info in builder.info.splits.items()},
          note="already prepared, kept (--overwrite rebuilds)"))
      continue
    counts = xquad.write_dataset(name, request.tfds_data_dir, files)
    out.append(Prepared(label, os.fspath(builder.data_path), counts,
                        note=f"from {request.xquad_dir}"))
  return out


def run(plan_: Plan) -> list[Prepared]:
  """Prepares what `plan_` names, in the TFDS data dir; one line each."""
  tf.io.gfile.makedirs(plan_.request.tfds_data_dir)
  prepared = _prepare_xlsum(plan_) + _prepare_mc4(plan_)
  if plan_.request.tydiqa:
    prepared.append(_prepare_tydiqa(plan_))
  return prepared + _prepare_xquad(plan_)


def training_hint(request: Request) -> str:
  return (f"Point lta train / lta eval at it with"
          f" --tfds_data_dir={request.tfds_data_dir} (or TFDS_DATA_DIR), and"
          f" --gin.lta.vocab.get_vocabulary.path=\"{request.vocab_path}\"")
