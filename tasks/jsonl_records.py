"""Reads JSON-lines files (XL-Sum releases, mC4 shards) record by record.

A malformed record (invalid UTF-8, invalid or too deeply nested JSON, a
missing or non-string field, a lone surrogate, an empty text) stops reading
with a `DataError` naming the file and line, unless the user asks to skip
such records (`skip_malformed_records.skip = True` in gin, or
`lta prepare-data --skip_malformed`); skipped records are logged and
counted. A file that cannot be read to its end (a truncated or corrupt
gzip, plain text named `.gz`) is a `DataError` naming the file and the last
line read; when skipping, the rest of that file is skipped, counted and
reported once. A file without a single usable record is always an error.
"""

import collections
import dataclasses
import gzip
import json
import threading
import zlib
from typing import Iterator, Optional, Sequence

from absl import logging
import gin
import tensorflow as tf

from lta import errors


class MalformedRecordError(errors.DataError):
  """A record that cannot be used, located by file and line."""


class CorruptFileError(errors.DataError):
  """A file that cannot be read to its end, located by file and line."""


class EmptyFileError(errors.DataError):
  """A data file (a split or a shard of one) without usable records."""


class JsonError(ValueError):
  """Text that is not JSON; `line` is where (1-based), when known."""

  def __init__(self, message: str, line: Optional[int] = None):
    super().__init__(message)
    self.line = line


SKIP_HINT = ("(pass --skip_malformed, or bind"
             " lta_tasks.skip_malformed_records.skip = True, to skip and count"
             " malformed data)")


@gin.configurable(module="lta_tasks")
def skip_malformed_records(skip: bool = False) -> bool:
  """Whether readers skip (and count) malformed records instead of failing."""
  return skip


@dataclasses.dataclass
class ReadStats:
  """What one `read_json_lines` call read: usable and skipped records, and
  why the rest of the file was skipped if it was corrupt."""
  records: int = 0
  skipped_records: int = 0
  corrupt: Optional[str] = None


_lock = threading.Lock()
_skipped = collections.Counter()
_corrupt: dict[str, str] = {}


def skipped_record_counts() -> dict[str, int]:
  """Malformed records skipped so far in this process, per file."""
  with _lock:
    return dict(_skipped)


def skipped_corrupt_files() -> dict[str, str]:
  """Files whose unreadable rest was skipped in this process -> why."""
  with _lock:
    return dict(_corrupt)


def record_corrupt_file(error: CorruptFileError, path: str) -> None:
  """Counts a corrupt file that is being skipped; says so once per file."""
  with _lock:
    first = path not in _corrupt
    _corrupt.setdefault(path, str(error))
  if first:
    logging.warning("Skipping the unreadable rest of a corrupt file: %s",
                    error)


def _describe_read_error(e: BaseException) -> str:
  text = str(e)
  if isinstance(e, gzip.BadGzipFile) and "Not a gzipped file" in text:
    return ("not gzip data although the name ends in .gz (plain text named"
            f" .gz?): {text}")
  if isinstance(e, gzip.BadGzipFile) and "CRC" in text:
    return f"corrupt gzip, the checksum does not match ({text})"
  if isinstance(e, EOFError):
    return "truncated gzip: the compressed data ends early"
  if isinstance(e, zlib.error):
    return f"corrupt gzip data ({text})"
  return f"read error ({type(e).__name__}: {text})"


def _open_binary(path: str):
  raw = tf.io.gfile.GFile(path, "rb")
  if path.endswith(".gz"):
    return gzip.GzipFile(fileobj=raw, mode="rb")
  return raw


def numbered_lines(path: str) -> Iterator[tuple[int, bytes]]:
  """(line number, raw line) of a file, gunzipped when it ends in `.gz`.

  Raises:
    CorruptFileError: the file cannot be opened or read to its end.
  """
  line_number = 0
  try:
    with _open_binary(path) as f:
      for line_number, line in enumerate(f, start=1):
        yield line_number, line
  except (OSError, EOFError, zlib.error, tf.errors.OpError) as e:
    where = f"after line {line_number}" if line_number else "at its start"
    message = _describe_read_error(e).replace("\n", " ")
    raise CorruptFileError(f"{path}: {message}, {where}") from e


def _check_no_surrogates(value: str, field: str) -> None:
  try:
    value.encode("utf-8")
  except UnicodeEncodeError as e:
    raise ValueError(
        f"field '{field}' holds a lone surrogate"
        f" ({value[e.start]!r}) at character {e.start}") from None


def parse_json_text(text: str):
  """json.loads, with errors as one-line JsonErrors."""
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise JsonError(f"invalid JSON ({e.msg} at column {e.colno})",
                    e.lineno) from None
  except RecursionError:
    raise JsonError("JSON nested too deeply to read") from None


def parse_line(
    line: bytes,
    required: Sequence[str],
    nonempty: Sequence[str],
) -> dict:
  """Parses one line or raises ValueError saying what is wrong with it."""
  try:
    text = line.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"invalid UTF-8 at byte {e.start}") from None
  record = parse_json_text(text)
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
    _check_no_surrogates(record[field], field)
  for field in nonempty:
    if not record[field].strip():
      raise ValueError(f"empty field '{field}'")
  return record


def read_json_lines(
    path: str,
    required: Sequence[str],
    nonempty: Sequence[str] = (),
    skip_malformed: Optional[bool] = None,
    stats: Optional[ReadStats] = None,
) -> Iterator[dict]:
  """Yields the records of a (possibly gzipped) JSON-lines file.

  Args:
    path: the file; `.gz` files are decompressed.
    required: fields every record must have, as strings.
    nonempty: fields that must hold more than whitespace.
    skip_malformed: skip bad records (and the rest of a corrupt file)
      instead of raising; None reads the gin setting `skip_malformed_records`.
    stats: filled in as the file is read, when given.

  Yields:
    Each record as a dict, in file order. Blank lines are ignored.

  Raises:
    MalformedRecordError: a bad record, when not skipping.
    CorruptFileError: a file that cannot be read to its end, when not
      skipping.
    EmptyFileError: a readable file without a usable record.
  """
  if skip_malformed is None:
    skip_malformed = skip_malformed_records()
  path = str(path)
  stats = stats if stats is not None else ReadStats()
  try:
    for line_number, line in numbered_lines(path):
      if not line.strip():
        continue
      try:
        record = parse_line(line, required, nonempty)
      except ValueError as e:
        message = f"{path}:{line_number}: {e}"
        if not skip_malformed:
          raise MalformedRecordError(f"{message} {SKIP_HINT}") from None
        logging.warning("Skipping malformed record %s", message)
        stats.skipped_records += 1
        with _lock:
          _skipped[path] += 1
        continue
      stats.records += 1
      yield record
  except CorruptFileError as e:
    if not skip_malformed:
      raise CorruptFileError(f"{e} {SKIP_HINT}") from e.__cause__
    stats.corrupt = str(e)
    record_corrupt_file(e, path)
    return
  if not stats.records:
    raise EmptyFileError(
        f"{path}: no usable records ({stats.skipped_records} malformed"
        " skipped); an empty split or shard is an error")
