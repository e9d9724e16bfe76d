"""The mT5 SentencePiece vocabulary, resolved lazily from a gin setting.

Tasks are registered at import time, long before gin files are parsed, and
must never open the SentencePiece file then. So every task holds the same
`LazyVocabulary`, which asks `current_vocabulary()` for the real vocabulary
each time it is used. Binding `lta.vocab.get_vocabulary.path` (in a gin file
or a --gin flag) therefore repoints every registered task; a job that makes
its own vocabulary (the CPU pipeline trains a tiny one) passes its path to
`use_vocabulary` around the steps that tokenize instead.
"""

import contextlib
import dataclasses
import functools
import json
import os
import socket
from typing import Iterable, Iterator, Optional, Sequence

import gin
import seqio
import tensorflow as tf

from lta import errors
from lta import GIN_DIR

# The public mT5 vocabulary: 250,000 pieces plus 100 sentinels already in the
# model file, hence extra_ids=0 (as in T5X's mT5 configs).
MT5_SPM_PATH = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"

# The binding that says where the vocabulary is.
PATH_BINDING = "lta.vocab.get_vocabulary.path"

# mT5's reserved ids; `train_tiny_sentencepiece` uses the same.
PAD_ID = 0
EOS_ID = 1
UNK_ID = 2


@functools.lru_cache(maxsize=None)
def _load(path: str, extra_ids: int) -> seqio.SentencePieceVocabulary:
  # seqio.SentencePieceVocabulary reads the file only on first use.
  return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


@gin.configurable(module="lta.vocab")  # the gin name is unchanged
def get_vocabulary(
    path: str = MT5_SPM_PATH, extra_ids: int = 0
) -> seqio.SentencePieceVocabulary:
  """Returns the SentencePiece vocabulary at `path` (one object per path)."""
  return _load(os.fspath(path), extra_ids)


# Paths given to `use_vocabulary`, innermost last. Process-wide, like the
# gin binding they take precedence over.
_IN_USE: list[str] = []


@contextlib.contextmanager
def use_vocabulary(path: str) -> Iterator[seqio.SentencePieceVocabulary]:
  """Within the block every task's vocabulary is the one at `path`.

  For a job that makes its own vocabulary and hands it to the steps that
  tokenize or score; `lta.vocab.get_vocabulary.path` is ignored meanwhile.
  """
  _IN_USE.append(os.fspath(path))
  try:
    yield current_vocabulary()
  finally:
    _IN_USE.pop()


def current_vocabulary() -> seqio.SentencePieceVocabulary:
  """The vocabulary tasks use now: `use_vocabulary`'s, else gin's."""
  return get_vocabulary(path=_IN_USE[-1]) if _IN_USE else get_vocabulary()


def vocabulary_path() -> str:
  """The SentencePiece model path tasks use now."""
  return current_vocabulary().sentencepiece_model_file


def _set_path_hint() -> str:
  return (f"download the mT5 SentencePiece model and set "
          f"--gin.{PATH_BINDING}=\\\"/path/to/sentencepiece.model\\\"")


@functools.lru_cache(maxsize=None)  # successes only: a failure re-checks
def check_path(path: str) -> None:
  """Raises a one-line error if the vocabulary at `path` cannot be read.

  A local file must exist; for gs:// the storage host must be reachable
  (otherwise TensorFlow fails deep in a dataset with a DNS error).
  """
  if path.startswith("gs://"):
    host = "storage.googleapis.com"
    try:
      socket.create_connection((host, 443), timeout=5).close()
    except OSError as e:
      raise errors.DataError(
          f"vocabulary {path}: cannot reach {host} ({e}); "
          f"{_set_path_hint()}") from None
  elif "://" not in path and not os.path.isfile(path):
    raise errors.MissingFileError(
        f"vocabulary {path} does not exist ({PATH_BINDING}); "
        f"{_set_path_hint()}")


def check_bound_path() -> None:
  """Checks the vocabulary path if gin binds one (the commands' early check)."""
  try:
    path = gin.query_parameter(PATH_BINDING)
  except ValueError:
    return  # not bound: checked when a task first reads the default
  check_path(os.fspath(path))


class LazyVocabulary(seqio.Vocabulary):
  """A seqio vocabulary that delegates to `current_vocabulary()` on every use.

  Constructing it reads nothing; the configured path is looked up when a
  dataset is built or text is encoded, so gin bindings made after task
  registration take effect.
  """

  def __init__(self):
    super().__init__(extra_ids=0)

  @property
  def resolved(self) -> seqio.SentencePieceVocabulary:
    vocabulary = current_vocabulary()
    check_path(vocabulary.sentencepiece_model_file)
    return vocabulary

  @property
  def bos_id(self) -> Optional[int]:
    return self.resolved.bos_id

  @property
  def eos_id(self) -> Optional[int]:
    return self.resolved.eos_id

  @property
  def pad_id(self) -> int:
    return self.resolved.pad_id

  @property
  def unk_id(self) -> Optional[int]:
    return self.resolved.unk_id

  @property
  def extra_ids(self) -> int:
    return self.resolved.extra_ids

  @property
  def vocab_size(self) -> int:
    return self.resolved.vocab_size

  @property
  def _base_vocab_size(self) -> int:
    return self.resolved._base_vocab_size  # pylint: disable=protected-access

  @property
  def sentencepiece_model_file(self) -> str:
    return vocabulary_path()

  @property
  def tokenizer(self):
    return self.resolved.tokenizer

  @property
  def sp_model(self) -> Optional[bytes]:
    return self.resolved.sp_model

  def encode(self, s):
    return self.resolved.encode(s)

  def decode(self, ids: Iterable[int]):
    return self.resolved.decode(ids)

  def encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    return self.resolved.encode_tf(s)

  def decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    return self.resolved.decode_tf(ids)

  def _encode(self, s: str) -> Sequence[int]:
    return self.resolved.encode(s)

  def _decode(self, ids):
    return self.resolved.decode(ids)

  def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    return self.resolved.encode_tf(s)

  def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    return self.resolved.decode_tf(ids)

  def __eq__(self, other) -> bool:
    if isinstance(other, LazyVocabulary):
      return True
    return self.resolved == other

  def __hash__(self) -> int:
    return hash(LazyVocabulary)

  def __str__(self) -> str:
    # Printing must not load the model (seqio logs vocabularies eagerly).
    return f"LazyVocabulary(current_vocabulary() -> {vocabulary_path()})"


# The one vocabulary every task in `lta_tasks` uses.
LAZY_VOCABULARY = LazyVocabulary()


def output_features(
    vocabulary: Optional[seqio.Vocabulary] = None,
) -> dict[str, seqio.Feature]:
  """mT5's text-to-text features: inputs and targets, both with EOS."""
  vocabulary = vocabulary or LAZY_VOCABULARY
  return {
      "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=True, required=False),
      "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True),
  }


# fairseq's reserved ids (mBART-50, NLLB-200): bos, pad, eos, unk.
FAIRSEQ_IDS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}


def train_tiny_sentencepiece(
    texts: Iterable[str],
    model_prefix: str,
    vocab_size: int = 1000,
    character_coverage: float = 0.98,
    fairseq_ids: bool = False,
    control_symbols: Sequence[str] = (),
) -> str:
  """Trains a small mT5-like SentencePiece model; returns the `.model` path.

  Same special ids as mT5 (pad=0, eos=1, unk=2, no bos) and byte fallback,
  so any script encodes without UNK: characters outside `character_coverage`
  become UTF-8 bytes. `vocab_size` is an upper bound (the model may come out
  smaller on little text) and must exceed the 259 special and byte pieces.
  Training is single-threaded, so the same texts give the same model.
  `fairseq_ids` gives mBART / NLLB's ids instead (FAIRSEQ_IDS: bos 0,
  pad 1, eos 2, unk 3); `control_symbols` (their language codes) follow
  the special ids as pieces that text never encodes to and decoding drops.
  """
  # Imported here: only tests and tools train vocabularies.
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top

  texts = [t for t in texts if t.strip()]
  if not texts:
    raise ValueError("train_tiny_sentencepiece needs at least one non-empty text")
  if vocab_size <= 259:
    raise ValueError(
        f"vocab_size={vocab_size} leaves no room next to the 3 special and 256"
        " byte-fallback pieces; use at least 260"
    )
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts),
      model_prefix=os.fspath(model_prefix),
      vocab_size=vocab_size,
      model_type="unigram",
      character_coverage=character_coverage,
      byte_fallback=True,
      **(FAIRSEQ_IDS if fairseq_ids else dict(
          pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1)),
      control_symbols=list(control_symbols),
      hard_vocab_limit=False,
      num_threads=1,
      minloglevel=2,
  )
  return os.fspath(model_prefix) + ".model"


# ------------------------- the vocabulary and the model -------------------------


@dataclasses.dataclass(frozen=True)
class ModelVocabulary:
  """What a model expects of its vocabulary, and where that was read."""
  rows: int  # T5Config.vocab_size: rows of the embedding and the head
  eos_id: int
  pad_id: int
  source: str


def _gin_bindings(path: str, wanted: Sequence[str], seen=()) -> dict:
  """T5Config bindings of a gin file and the files it includes, read with
  gin's parser but not applied (no global gin state changes)."""
  # Imported on use: only `lta prepare-data` reads model files this way.
  from gin import config_parser  # pylint: disable=g-import-not-at-top

  if not os.path.exists(path) and os.path.exists(
      os.path.join(GIN_DIR, path)):
    path = os.path.join(GIN_DIR, path)
  if not os.path.exists(path):
    raise errors.MissingFileError(f"model gin file {path!r} does not exist")
  if path in seen:
    return {}
  found = {}
  with open(path, encoding="utf-8") as f:
    parser = config_parser.ConfigParser(f, gin.config.ParserDelegate(
        skip_unknown=True))
    for statement in parser:
      if isinstance(statement, config_parser.IncludeStatement):
        found.update(_gin_bindings(statement.filename, wanted, seen + (path,)))
      elif not isinstance(statement, config_parser.BindingStatement):
        continue
      elif not statement.arg_name and not statement.scope:
        found["%" + statement.selector] = statement.value  # a macro
      elif (statement.selector.split(".")[-1] == "T5Config" and
            not statement.scope and statement.arg_name in wanted):
        found[statement.arg_name] = statement.value
  return found


def _with_macros(found: dict) -> dict:
  """`found`'s values with each %MACRO reference replaced by its value."""
  resolved = {}
  for name, value in found.items():
    selector = getattr(value, "scoped_selector", "")
    if selector.endswith("/gin.macro"):
      value = found.get("%" + selector[:-len("/gin.macro")], value)
    resolved[name] = value
  return resolved


def model_vocabulary(gin_file: Optional[str] = None,
                     checkpoint_path: Optional[str] = None) -> ModelVocabulary:
  """The vocabulary size and special ids of a model, without loading it.

  From an HF checkpoint's config.json, else from the T5Config bindings of a
  gin model file (e.g. models/mt5_base.gin), else T5Config's defaults (mT5).
  """
  # Imported on use: the model config imports nothing heavy, but the vocab
  # module should not depend on the model package at import time.
  from lta.models.mt5.config import T5Config  # pylint: disable=g-import-not-at-top

  default = T5Config()
  fields = ("vocab_size", "eos_token_id", "pad_token_id")
  if checkpoint_path:
    config_file = os.path.join(checkpoint_path, "config.json")
    if not tf.io.gfile.exists(config_file):
      raise errors.MissingFileError(
          f"{config_file} does not exist (--initial_checkpoint_path must be"
          " an HF checkpoint directory)")
    with tf.io.gfile.GFile(config_file) as f:
      values, source = json.load(f), config_file
  elif gin_file:
    values = _with_macros(_gin_bindings(gin_file, fields))
    source = gin_file
  else:
    values, source = {}, "T5Config's defaults (mT5)"
  try:
    return ModelVocabulary(
        rows=int(values.get("vocab_size", default.vocab_size)),
        eos_id=int(values.get("eos_token_id", default.eos_token_id)),
        pad_id=int(values.get("pad_token_id", default.pad_token_id)),
        source=source)
  except (TypeError, ValueError) as e:
    raise errors.CheckpointError(f"{source}: {e}") from None


def check_fits_model(vocabulary: seqio.Vocabulary,
                     model: ModelVocabulary) -> None:
  """DataError unless every id of `vocabulary` has a row in the model and
  the two agree on the EOS and PAD ids.

  mT5 has more rows (250,112) than SentencePiece ids (250,100): the extra
  rows are never produced, which is fine; fewer rows are not.
  """
  name = getattr(vocabulary, "sentencepiece_model_file", str(vocabulary))
  if vocabulary.vocab_size > model.rows:
    raise errors.DataError(
        f"vocabulary {name} has {vocabulary.vocab_size:,} ids but the model"
        f" ({model.source}) has {model.rows:,} embedding rows"
        " (T5Config.vocab_size); use the model's own vocabulary")
  for what, ours, theirs in (("EOS", vocabulary.eos_id, model.eos_id),
                             ("PAD", vocabulary.pad_id, model.pad_id)):
    if ours != theirs:
      raise errors.DataError(
          f"vocabulary {name} has {what} id {ours} but the model"
          f" ({model.source}) uses {theirs}")


def load_checked(path: str) -> seqio.SentencePieceVocabulary:
  """The SentencePiece vocabulary at `path`, read now; one-line errors."""
  if "://" not in path and not os.path.exists(path):
    raise errors.MissingFileError(
        f"vocabulary {path!r} does not exist (--vocab, or"
        " lta.vocab.get_vocabulary.path in gin)")
  vocabulary = get_vocabulary(path)
  try:
    vocabulary.vocab_size  # pylint: disable=pointless-statement
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(
        f"vocabulary {path!r} is not a SentencePiece model"
        f" ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    ) from e
  return vocabulary
