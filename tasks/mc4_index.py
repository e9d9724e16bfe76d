"""An index of local mC4 json.gz shards, written by `lta prepare-data`.

`build` reads every shard of one language, validates every record (see
`jsonl_records`) and writes `<tfds_data_dir>/lta_mc4/<lang>.json`: per split,
each shard's absolute path, size and record count. `mc4_prefix_lm.<lang>`
then reads exactly those shards whenever the TFDS data dir holds the index
(and `lta_tasks.mc4_local_dir` is not bound), so `--tfds_data_dir` alone
points training at them; `check` compares the shards with the index, one
stat per file, before any model loads. With `skip_malformed`, a corrupt
shard is left out of the index (and counted), and bad records are skipped
when the index is built and again when the shards are read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

from lta import errors

from . import jsonl_records

INDEX_DIR = "lta_mc4"
FORMAT_VERSION = 1
SPLITS = ("train", "validation")
# Fields of every mC4 record, as published.
FIELDS = ("text", "timestamp", "url")
NONEMPTY = ("text",)


def local_file_patterns(directory: str, lang: str) -> dict[str, str]:
  """The published shard names of `lang` in `directory`, per split."""
  return {
      "train": os.path.join(directory, f"c4-{lang}.tfrecord-*-of-*.json.gz"),
      "validation": os.path.join(
          directory, f"c4-{lang}-validation.tfrecord-*-of-*.json.gz"),
  }


def index_path(data_dir: str, lang: str) -> str:
  return os.path.join(data_dir, INDEX_DIR, f"{lang}.json")


@dataclasses.dataclass
class Shard:
  path: str
  bytes: int
  records: int
  skipped_records: int = 0


@dataclasses.dataclass
class Mc4Index:
  """The validated shards of one language, per split."""
  language: str
  mc4_dir: str
  skip_malformed: bool
  shards: dict[str, list[Shard]]
  # Shards left out because they are corrupt: path -> why.
  corrupt: dict[str, dict[str, str]]
  path: str = ""

  def paths(self, split: str) -> list[str]:
    return [s.path for s in self.shards.get(split, [])]

  def records(self, split: str) -> int:
    return sum(s.records for s in self.shards.get(split, []))

  def skipped_records(self, split: str) -> int:
    return sum(s.skipped_records for s in self.shards.get(split, []))

  def to_json(self) -> dict:
    return {"format_version": FORMAT_VERSION, "language": self.language,
            "mc4_dir": self.mc4_dir, "skip_malformed": self.skip_malformed,
            "shards": {split: [dataclasses.asdict(s) for s in shards]
                       for split, shards in self.shards.items()},
            "corrupt": self.corrupt}


def _index_split(pattern: str, skip_malformed: bool
                 ) -> tuple[list[Shard], dict[str, str]]:
  shards, corrupt = [], {}
  for path in sorted(tf.io.gfile.glob(pattern)):
    stats = jsonl_records.ReadStats()
    for _ in jsonl_records.read_json_lines(
        path, FIELDS, NONEMPTY, skip_malformed=skip_malformed, stats=stats):
      pass
    if stats.corrupt:
      corrupt[path] = stats.corrupt
      continue
    shards.append(Shard(path, tf.io.gfile.stat(path).length, stats.records,
                        stats.skipped_records))
  return shards, corrupt


def build(mc4_dir: str, lang: str, data_dir: str,
          skip_malformed: bool = False) -> Mc4Index:
  """Validates the shards of `lang` in `mc4_dir` and writes their index.

  Raises:
    DataError: no train shard, or (when not skipping) a bad record or a
      corrupt shard, named by file and line.
  """
  mc4_dir = os.path.abspath(mc4_dir) if "://" not in mc4_dir else mc4_dir
  check_sources(mc4_dir, lang)
  patterns = local_file_patterns(mc4_dir, lang)
  shards, corrupt = {}, {}
  for split in SPLITS:
    shards[split], corrupt[split] = _index_split(patterns[split],
                                                 skip_malformed)
  if not shards["train"]:
    raise errors.DataError(
        f"mC4 '{lang}': every train shard in {mc4_dir} is corrupt:"
        f" {sorted(corrupt['train'])}")
  index = Mc4Index(lang, mc4_dir, skip_malformed, shards, corrupt,
                   index_path(data_dir, lang))
  tf.io.gfile.makedirs(os.path.dirname(index.path))
  with tf.io.gfile.GFile(index.path + ".tmp", "w") as f:
    json.dump(index.to_json(), f, indent=1)
  tf.io.gfile.rename(index.path + ".tmp", index.path, overwrite=True)
  return index


def check_sources(mc4_dir: str, lang: str) -> None:
  """DataError unless `mc4_dir` holds train shards of `lang`."""
  pattern = local_file_patterns(mc4_dir, lang)["train"]
  if not tf.io.gfile.glob(pattern):
    raise errors.DataError(f"mC4 '{lang}': no train shards match {pattern}"
                           f"{_languages_hint(mc4_dir, lang)}")


def _languages_hint(mc4_dir: str, lang: str) -> str:
  names = tf.io.gfile.glob(os.path.join(mc4_dir, "c4-*.tfrecord-*.json.gz"))
  found = {os.path.basename(n)[3:].split(".tfrecord")[0].removesuffix(
      "-validation") for n in names}
  if lang in found:
    return "; only its validation shards are there"
  if not found:
    return "; the directory holds no c4-<lang>.tfrecord-*.json.gz shards"
  return (errors.did_you_mean(lang, found) or
          f"; it holds shards of {sorted(found)}")


def load(path: str) -> Mc4Index:
  """The index at `path`; DataError when it cannot be read."""
  try:
    with tf.io.gfile.GFile(path) as f:
      raw = json.load(f)
    if raw.get("format_version") != FORMAT_VERSION:
      raise ValueError(f"format_version {raw.get('format_version')!r},"
                       f" expected {FORMAT_VERSION}")
    shards = {split: [Shard(**s) for s in entries]
              for split, entries in raw["shards"].items()}
    return Mc4Index(raw["language"], raw["mc4_dir"],
                    bool(raw["skip_malformed"]), shards, raw["corrupt"], path)
  except (ValueError, KeyError, TypeError, tf.errors.OpError) as e:
    raise errors.DataError(
        f"{path}: unreadable mC4 index ({type(e).__name__}: {e}); rerun"
        " lta prepare-data --mc4_dir=...") from e


def find(lang: str, data_dir: str) -> Optional[Mc4Index]:
  """The index of `lang` in `data_dir`, or None when there is none."""
  path = index_path(data_dir, lang)
  return load(path) if tf.io.gfile.exists(path) else None


def check(index: Mc4Index, split: str) -> None:
  """DataError unless `split`'s indexed shards are there, unchanged."""
  if not index.shards.get(split):
    raise errors.DataError(
        f"mC4 '{index.language}' {split}: {index.path} lists no shards"
        f" (none matched in {index.mc4_dir} when it was built)")
  for shard in index.shards[split]:
    if not tf.io.gfile.exists(shard.path):
      raise errors.DataError(
          f"{shard.path}: listed in {index.path} but missing; rerun"
          " lta prepare-data --mc4_dir=... for the shards as they are now")
    size = tf.io.gfile.stat(shard.path).length
    if size != shard.bytes:
      raise errors.DataError(
          f"{shard.path}: {size} bytes, but {shard.bytes} when"
          f" {index.path} was built; rerun lta prepare-data --mc4_dir=...")
