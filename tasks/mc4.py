"""mC4 prefix-LM tasks: `mc4_prefix_lm.<lang>` for every mC4 language.

Language vectors are trained on these (T5's prefix-LM objective, see
`lta.preprocessors.prefix_lm`). The text comes from TFDS
`c4/multilingual:3.1.0` (splits `<lang>` and `<lang>-validation`) unless gin
points at a directory of the json.gz shards published for mC4:

  lta_tasks.mc4_local_dir.path = "/data/mc4"

which must hold `c4-<lang>.tfrecord-XXXXX-of-YYYYY.json.gz` (train) and
`c4-<lang>-validation.tfrecord-XXXXX-of-YYYYY.json.gz`, one JSON object per
line with text, timestamp and url. The choice is made when a dataset is
built, so the binding may come after this module is imported. Language
codes with a dash (`bg-Latn`) use an underscore in task names.
"""

import functools
import os
from typing import Mapping, Optional, Sequence

import gin
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from lta import preprocessors
from lta import vocab

from . import jsonl_records

TFDS_NAME = "c4/multilingual:3.1.0"
MC4_LANGS = tuple(tfds.text.c4.MC4_LANGUAGES)

_FIELDS = ("text", "timestamp", "url")


def task_name(lang: str) -> str:
  return f"mc4_prefix_lm.{lang.replace('-', '_')}"


@gin.configurable(module="lta_tasks")
def mc4_local_dir(path: Optional[str] = None) -> Optional[str]:
  """Directory of mC4 json.gz shards to read instead of TFDS (None: TFDS)."""
  return path


def local_file_patterns(directory: str, lang: str) -> dict[str, str]:
  return {
      "train": os.path.join(directory, f"c4-{lang}.tfrecord-*-of-*.json.gz"),
      "validation": os.path.join(
          directory, f"c4-{lang}-validation.tfrecord-*-of-*.json.gz"
      ),
  }


def _shard_records(filename, skip_malformed):
  for record in jsonl_records.read_json_lines(
      filename.decode("utf-8"),
      required=_FIELDS,
      nonempty=("text",),
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
  """mC4 text in one language, from TFDS or from local json.gz shards."""

  def __init__(self, lang: str):
    self._lang = lang
    self._delegates = {}
    super().__init__(splits=("train", "validation"))

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def _delegate(self) -> seqio.DataSource:
    directory = mc4_local_dir()
    skip = jsonl_records.skip_malformed_records()
    key = (directory, skip)
    if key not in self._delegates:
      if directory is None:
        source = seqio.TfdsDataSource(
            tfds_name=TFDS_NAME,
            splits={"train": self._lang, "validation": f"{self._lang}-validation"},
        )
      else:
        source = seqio.FileDataSource(
            read_file_fn=functools.partial(read_shard, skip_malformed=skip),
            split_to_filepattern=local_file_patterns(directory, self._lang),
        )
      self._delegates[key] = source
    return self._delegates[key]

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
    if isinstance(source, seqio.FileDataSource) and not source.list_shards(split):
      pattern = local_file_patterns(mc4_local_dir(), self._lang)[split]
      raise FileNotFoundError(
          f"mC4 '{self._lang}' {split}: no shards match {pattern}"
      )
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
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=vocab.output_features(),
      metric_fns=[],
  )
