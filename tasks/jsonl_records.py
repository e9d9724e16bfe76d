"""Reads JSON-lines files (XL-Sum releases, mC4 shards) record by record.

A malformed record (invalid UTF-8, invalid JSON, a missing field, an empty
text) stops reading with an error naming the file and line, unless the user
asks to skip such records (`skip_malformed_records.skip = True` in gin, or
the XL-Sum builder's `skip_malformed`); skipped records are logged and
counted. A file without a single usable record is always an error.
"""

import collections
import gzip
import json
import threading
from typing import Iterator, Optional, Sequence

from absl import logging
import gin
import tensorflow as tf


class MalformedRecordError(ValueError):
  """A record that cannot be used, located by file and line."""


class EmptyFileError(ValueError):
  """A data file (a split or a shard of one) without usable records."""


@gin.configurable(module="lta_tasks")
def skip_malformed_records(skip: bool = False) -> bool:
  """Whether readers skip (and count) malformed records instead of failing."""
  return skip


_skipped = collections.Counter()
_skipped_lock = threading.Lock()


def skipped_record_counts() -> dict[str, int]:
  """Malformed records skipped so far in this process, per file."""
  with _skipped_lock:
    return dict(_skipped)


def _open_binary(path: str):
  raw = tf.io.gfile.GFile(path, "rb")
  if path.endswith(".gz"):
    return gzip.GzipFile(fileobj=raw, mode="rb")
  return raw


def _parse_line(
    line: bytes,
    required: Sequence[str],
    nonempty: Sequence[str],
) -> dict:
  """Parses one line or raises ValueError saying what is wrong with it."""
  try:
    text = line.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"invalid UTF-8 at byte {e.start}") from None
  try:
    record = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
  if not isinstance(record, dict):
    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
  for field in required:
    if field not in record:
      raise ValueError(f"missing field '{field}'")
    if not isinstance(record[field], str):
      raise ValueError(
          f"field '{field}' must be a string, got"
          f" {type(record[field]).__name__}"
      )
  for field in nonempty:
    if not record[field].strip():
      raise ValueError(f"empty field '{field}'")
  return record


def read_json_lines(
    path: str,
    required: Sequence[str],
    nonempty: Sequence[str] = (),
    skip_malformed: Optional[bool] = None,
) -> Iterator[dict]:
  """Yields the records of a (possibly gzipped) JSON-lines file.

  Args:
    path: the file; `.gz` files are decompressed.
    required: fields every record must have, as strings.
    nonempty: fields that must hold more than whitespace.
    skip_malformed: skip bad records instead of raising; None reads the gin
      setting `skip_malformed_records`.

  Yields:
    Each record as a dict, in file order. Blank lines are ignored.

  Raises:
    MalformedRecordError: a bad record, when not skipping.
    EmptyFileError: when the file has no usable record.
  """
  if skip_malformed is None:
    skip_malformed = skip_malformed_records()
  path = str(path)
  num_good = num_skipped = 0
  with _open_binary(path) as f:
    for line_number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = _parse_line(line, required, nonempty)
      except ValueError as e:
        message = f"{path}:{line_number}: {e}"
        if not skip_malformed:
          raise MalformedRecordError(
              f"{message} (bind lta_tasks.skip_malformed_records.skip = True"
              " to skip such records)"
          ) from None
        logging.warning("Skipping malformed record %s", message)
        num_skipped += 1
        with _skipped_lock:
          _skipped[path] += 1
        continue
      num_good += 1
      yield record
  if not num_good:
    raise EmptyFileError(
        f"{path}: no usable records ({num_skipped} malformed skipped); an"
        " empty split or shard is an error"
    )
