"""The mT5 SentencePiece vocabulary, resolved lazily from a gin setting.

Tasks are registered at import time, long before gin files are parsed, and
must never open the SentencePiece file then. So every task holds the same
`LazyVocabulary`, which asks `get_vocabulary()` for the real vocabulary each
time it is used. Binding `lta.vocab.get_vocabulary.path` (in a gin file or
with `gin.bind_parameter`) therefore repoints every registered task, e.g. at
the tiny test vocabulary in the CPU pipeline.
"""

import functools
import os
from typing import Iterable, Optional, Sequence

import gin
import seqio
import tensorflow as tf

# The public mT5 vocabulary: 250,000 pieces plus 100 sentinels already in the
# model file, hence extra_ids=0 (as in T5X's mT5 configs).
MT5_SPM_PATH = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"

# mT5's reserved ids; `train_tiny_sentencepiece` uses the same.
PAD_ID = 0
EOS_ID = 1
UNK_ID = 2


@functools.lru_cache(maxsize=None)
def _load(path: str, extra_ids: int) -> seqio.SentencePieceVocabulary:
  # seqio.SentencePieceVocabulary reads the file only on first use.
  return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


@gin.configurable(module="lta.vocab")
def get_vocabulary(
    path: str = MT5_SPM_PATH, extra_ids: int = 0
) -> seqio.SentencePieceVocabulary:
  """Returns the SentencePiece vocabulary at `path` (one object per path)."""
  return _load(os.fspath(path), extra_ids)


def vocabulary_path() -> str:
  """The SentencePiece model path currently configured."""
  return get_vocabulary().sentencepiece_model_file


class LazyVocabulary(seqio.Vocabulary):
  """A seqio vocabulary that delegates to `get_vocabulary()` on every use.

  Constructing it reads nothing; the configured path is looked up when a
  dataset is built or text is encoded, so gin bindings made after task
  registration take effect.
  """

  def __init__(self):
    super().__init__(extra_ids=0)

  @property
  def resolved(self) -> seqio.SentencePieceVocabulary:
    return get_vocabulary()

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
    return self.resolved.sentencepiece_model_file

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
    return f"LazyVocabulary(get_vocabulary() -> {get_vocabulary().sentencepiece_model_file})"


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


def train_tiny_sentencepiece(
    texts: Iterable[str],
    model_prefix: str,
    vocab_size: int = 1000,
    character_coverage: float = 0.98,
) -> str:
  """Trains a small mT5-like SentencePiece model; returns the `.model` path.

  Same special ids as mT5 (pad=0, eos=1, unk=2, no bos) and byte fallback,
  so any script encodes without UNK: characters outside `character_coverage`
  become UTF-8 bytes. `vocab_size` is an upper bound (the model may come out
  smaller on little text) and must exceed the 259 special and byte pieces.
  Training is single-threaded, so the same texts give the same model.
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
      pad_id=PAD_ID,
      eos_id=EOS_ID,
      unk_id=UNK_ID,
      bos_id=-1,
      hard_vocab_limit=False,
      num_threads=1,
      minloglevel=2,
  )
  return os.fspath(model_prefix) + ".model"
