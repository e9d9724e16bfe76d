"""T5's prefix language-modelling objective as seqio token preprocessors.

Language vectors are trained on unlabelled text with this objective (paper,
Sec. 2), which is `t5.data.preprocessors.prefix_lm` (Raffel et al., 2020).
`prefix_lm` does what T5's does, in the same three steps:

1. `select_random_chunk`: a document longer than `max_chunk_tokens` (T5's
   65,536) is cut into chunks of that size at multiples of it, and one chunk,
   drawn uniformly, is kept; a shorter document is kept whole. Empty
   documents are dropped.
2. `split_into_segments`: the chunk is cut into consecutive segments of
   `sequence_length["inputs"]` tokens (less one for EOS where the feature
   adds one); the last segment may be shorter. Every segment is one example,
   so a long document gives several and a short one gives one.
3. `split_at_random_point`: a segment of n >= 2 tokens is split after k
   tokens, k uniform on {1, ..., n - 1}: `inputs` is the first k tokens,
   `targets` the other n - k. A one-token segment gives empty `inputs` and
   that token as `targets`, as in T5.

For mBART and NLLB the task then puts the language's code before both
(`lta.data.language_codes.add_language_codes`); the segments are one token
shorter then, so the code costs no text.

`inputs` followed by `targets` is always exactly the segment, and the
segments of a document are its chunk, in order. Targets longer than
`sequence_length["targets"]` (less EOS) are cut by the task's later
`append_eos_after_trim`, as in T5; a targets length of at least the inputs
length keeps every token. Randomness comes from seqio's per-preprocessor
seeds, so a task's output is fixed by the seed given to `get_dataset`.
"""

from typing import Mapping, Optional

import seqio
import tensorflow as tf

from lta import errors
from lta.data import language_codes

# T5's `select_random_chunk(max_length=65536)` in its prefix_lm.
MAX_CHUNK_TOKENS = 65536


def token_budget(
    key: str,
    sequence_length: Optional[Mapping[str, Optional[int]]],
    output_features: Mapping[str, seqio.Feature],
) -> int:
  """Tokens `key` may hold before EOS is appended."""
  length = sequence_length.get(key) if sequence_length else None
  if length is None:
    raise errors.ConfigError(
        f"the objective needs sequence_length['{key}'] (TASK_FEATURE_LENGTHS;"
        f" got {sequence_length!r})")
  budget = length - (1 if output_features[key].add_eos else 0)
  if budget < 1:
    raise errors.ConfigError(
        f"sequence_length['{key}']={length} leaves no room for tokens"
        f" (add_eos={output_features[key].add_eos})")
  return budget


@seqio.map_over_dataset(num_seeds=1)
def _select_random_chunk(features, seed, *, key: str, max_tokens: int):
  tokens = features[key]
  num_chunks = (tf.size(tokens) + max_tokens - 1) // max_tokens
  chunk = tf.random.stateless_uniform(
      [], seed=seed, maxval=num_chunks, dtype=tf.int32)
  return {key: tokens[chunk * max_tokens:(chunk + 1) * max_tokens]}


def select_random_chunk(dataset: tf.data.Dataset, *, key: str,
                        max_tokens: int) -> tf.data.Dataset:
  """One grid-aligned chunk of at most `max_tokens` per non-empty document."""
  dataset = dataset.filter(lambda x: tf.size(x[key]) > 0)
  return _select_random_chunk(dataset, key=key, max_tokens=max_tokens)  # pylint: disable=unexpected-keyword-arg


def split_into_segments(dataset: tf.data.Dataset, *, key: str,
                        segment_tokens: int) -> tf.data.Dataset:
  """One example per consecutive `segment_tokens`-token segment of `key`."""

  def to_rows(x):
    tokens = x[key]
    n = tf.size(tokens)
    rows = (n + segment_tokens - 1) // segment_tokens
    padded = tf.pad(tokens, [[0, rows * segment_tokens - n]])
    lengths = tf.minimum(segment_tokens, n - tf.range(rows) * segment_tokens)
    return tf.reshape(padded, [rows, segment_tokens]), lengths

  dataset = dataset.filter(lambda x: tf.size(x[key]) > 0)
  dataset = dataset.map(to_rows, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.unbatch().map(lambda row, length: {key: row[:length]},
                               num_parallel_calls=tf.data.AUTOTUNE)


@seqio.map_over_dataset(num_seeds=1)
def _split_at_random_point(features, seed, *, key: str):
  tokens = features[key]
  n = tf.size(tokens)
  # k uniform on {1, ..., n-1}; k = 0 only for a one-token segment.
  k = tf.random.stateless_uniform(
      [], seed=seed, minval=tf.minimum(1, n - 1), maxval=n, dtype=tf.int32)
  return {"inputs": tokens[:k], "targets": tokens[k:]}


def split_at_random_point(dataset: tf.data.Dataset, *,
                          key: str) -> tf.data.Dataset:
  """Each sequence in `key` -> {"inputs": its prefix, "targets": the rest}."""
  return _split_at_random_point(dataset, key=key)  # pylint: disable=unexpected-keyword-arg


def prefix_lm(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, Optional[int]],
    output_features: Mapping[str, seqio.Feature],
    key: str = "targets",
    max_chunk_tokens: int = MAX_CHUNK_TOKENS,
) -> tf.data.Dataset:
  """T5's prefix-LM examples from tokenized documents in `features[key]`.

  See the module docstring for the three steps.

  Args:
    dataset: examples with a 1-D int token tensor under `key`.
    sequence_length: must give lengths for "inputs" and "targets".
    output_features: the task's features (for their `add_eos`).
    key: the feature holding the document's tokens.
    max_chunk_tokens: documents longer than this contribute one random
      chunk of this many tokens.

  Returns:
    A dataset of {"inputs", "targets"} token examples, one per segment;
    other features are dropped because they describe the whole document.
  """
  # A model with language codes (mBART, NLLB) gets its code before the
  # segment later (add_language_codes): leave it room.
  segment_tokens = (token_budget("inputs", sequence_length, output_features)
                    - language_codes.tokens_added())
  token_budget("targets", sequence_length, output_features)  # validates
  if segment_tokens < 1:
    raise errors.ConfigError(
        f"sequence_length['inputs']={sequence_length['inputs']} leaves no"
        " room for tokens after the language code")
  if max_chunk_tokens < 1:
    raise errors.ConfigError(
        f"prefix_lm: max_chunk_tokens must be positive, got {max_chunk_tokens}")
  dataset = select_random_chunk(dataset, key=key, max_tokens=max_chunk_tokens)
  dataset = split_into_segments(dataset, key=key,
                                segment_tokens=segment_tokens)
  return split_at_random_point(dataset, key=key)
