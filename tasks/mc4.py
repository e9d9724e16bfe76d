"""mC4 prefix-LM tasks: `mc4_prefix_lm.<lang>` for every mC4 language.

Language vectors are trained on these (T5's prefix-LM objective, see
`lta.data.preprocessors.prefix_lm`). The text is read from, in this order:

1. a directory of the json.gz shards published for mC4, when gin names one:
     lta_tasks.mc4_local_dir.path = "/data/mc4"
   holding `c4-<lang>.tfrecord-XXXXX-of-YYYYY.json.gz` (train) and
   `c4-<lang>-validation.tfrecord-XXXXX-of-YYYYY.json.gz`, one JSON object
   per line with text, timestamp and url; records are validated as read;
2. the shards indexed by `lta prepare-data --mc4_dir=...`, when the TFDS data
   dir holds an index for the language (`lta_tasks.mc4_index`);
3. TFDS `c4/multilingual:3.1.0` (splits `<lang>` and `<lang>-validation`).

The choice is made when a dataset is built, so gin bindings and
--tfds_data_dir may come after this module is imported. Language codes with
a dash (`bg-Latn`) use an underscore in task names. For mBART-50 and
NLLB-200 the language's code leads inputs and targets, as in XL-Sum.
"""

import functools
import json
from typing import Mapping, Optional, Sequence

import gin
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from lta import errors
from lta.data import language_codes
from lta.data import preprocessors
from lta.data import vocab

from . import jsonl_records
from . import mc4_index
from . import tfds_dirs

TFDS_NAME = "c4/multilingual:3.1.0"
MC4_LANGS = tuple(tfds.text.c4.MC4_LANGUAGES)

_FIELDS = mc4_index.FIELDS
local_file_patterns = mc4_index.local_file_patterns


def task_name(lang: str) -> str:
  return f"mc4_prefix_lm.{lang.replace('-', '_')}"


@gin.configurable(module="lta_tasks")
def mc4_local_dir(path: Optional[str] = None) -> Optional[str]:
  """Directory of mC4 json.gz shards to read as they are (None: the index
  `lta prepare-data` wrote in the TFDS data dir, else TFDS)."""
  return path


def _shard_records(filename, skip_malformed):
  for record in jsonl_records.read_json_lines(
      filename.decode("utf-8"),
      required=_FIELDS,
      nonempty=mc4_index.NONEMPTY,
      skip_malformed=bool(skip_malformed),
  ):
    yield {field: record[field] for field in _FIELDS}


def read_shard(filename: tf.Tensor, skip_malformed: bool) -> tf.data.Dataset:
  """The records of one json.gz shard, validated line by line."""
  return tf.data.Dataset.from_generator(
      _shard_records,
      args=(filename, skip_malformed),
      output_signature={f: tf.TensorSpec((), tf.string) for f in _FIELDS},
  )


class Mc4Source(seqio.DataSource):
  """mC4 text in one language: local shards, indexed shards or TFDS."""

  def __init__(self, lang: str):
    self._lang = lang
    self._delegates = {}
    super().__init__(splits=("train", "validation"))

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def _where(self):
    """(local directory, index, skip) that choose the delegate."""
    directory = mc4_local_dir()
    index = None
    if directory is None:
      index = mc4_index.find(self._lang, tfds_dirs.tfds_data_dir())
    return directory, index, jsonl_records.skip_malformed_records()

  def _delegate(self) -> seqio.DataSource:
    directory, index, skip = self._where()
    key = (directory, skip, index and json.dumps(index.to_json()))
    if key not in self._delegates:
      if directory is not None:
        source = seqio.FileDataSource(
            read_file_fn=functools.partial(read_shard, skip_malformed=skip),
            split_to_filepattern=local_file_patterns(directory, self._lang),
        )
      elif index is not None:
        source = seqio.FileDataSource(
            read_file_fn=functools.partial(
                read_shard, skip_malformed=skip or index.skip_malformed),
            split_to_filepattern={s: index.paths(s) for s in self.splits},
            num_input_examples={s: index.records(s) for s in self.splits},
        )
      else:
        source = seqio.TfdsDataSource(
            tfds_name=TFDS_NAME,
            splits={"train": self._lang, "validation": f"{self._lang}-validation"},
        )
      self._delegates[key] = source
    return self._delegates[key]

  def check_prepared(self, split: str) -> None:
    """DataError unless `split` can be read; a stat per shard at most."""
    directory, index, _ = self._where()
    if directory is not None:
      pattern = local_file_patterns(directory, self._lang)[split]
      if not tf.io.gfile.glob(pattern):
        raise errors.DataError(
            f"mC4 '{self._lang}' {split}: no shards match {pattern}"
            " (lta_tasks.mc4_local_dir.path)")
    elif index is not None:
      mc4_index.check(index, split)
    else:
      data_dir = tfds_dirs.tfds_data_dir()
      if not tfds.builder(TFDS_NAME, data_dir=data_dir).is_prepared():
        raise errors.DataError(
            f"mC4 '{self._lang}' is not prepared in {data_dir}: no"
            f" {mc4_index.index_path(data_dir, self._lang)} and no TFDS"
            f" {TFDS_NAME}; run lta prepare-data --mc4_dir=DIR"
            f" --mc4_languages={self._lang} with its json.gz shards, or set"
            " --tfds_data_dir / TFDS_DATA_DIR to where that was done")

  def get_dataset(
      self,
      split: str = "train",
      shuffle: bool = True,
      seed: Optional[int] = None,
      shard_info: Optional[seqio.ShardInfo] = None,
      *,
      sequence_length: Optional[Mapping[str, int]] = None,
      use_cached: bool = False,
      num_epochs: Optional[int] = 1,
  ) -> tf.data.Dataset:
    source = self._delegate()
    if isinstance(source, seqio.FileDataSource):
      self.check_prepared(split)
    return source.get_dataset(
        split=split, shuffle=shuffle, seed=seed, shard_info=shard_info
    )

  def list_shards(self, split: str) -> Sequence[str]:
    return self._delegate().list_shards(split)

  def num_input_examples(self, split: str) -> Optional[int]:
    return self._delegate().num_input_examples(split)


for _lang in MC4_LANGS:
  seqio.TaskRegistry.add(
      task_name(_lang),
      source=Mc4Source(_lang),
      preprocessors=[
          functools.partial(
              seqio.preprocessors.rekey, key_map={"targets": "text"}
          ),
          seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          preprocessors.prefix_lm,
          functools.partial(language_codes.add_language_codes, lang=_lang),
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=vocab.output_features(),
      metric_fns=[],
  )
