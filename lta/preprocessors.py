"""T5's prefix language-modelling objective as a seqio token preprocessor.

Language vectors are trained on unlabelled text with this objective (paper,
Sec. 2): take a random chunk of a tokenized document and split it at a
random point; the model reads the prefix (`inputs`) and predicts the rest
(`targets`).
"""

from typing import Mapping, Optional

import seqio
import tensorflow as tf


def _token_budget(
    key: str,
    sequence_length: Mapping[str, Optional[int]],
    output_features: Mapping[str, seqio.Feature],
) -> int:
  """Tokens `key` may hold before EOS is appended."""
  length = sequence_length.get(key) if sequence_length else None
  if length is None:
    raise ValueError(
        f"prefix_lm needs sequence_length['{key}'] (got {sequence_length!r})"
    )
  budget = length - (1 if output_features[key].add_eos else 0)
  if budget < 1:
    raise ValueError(
        f"sequence_length['{key}']={length} leaves no room for tokens"
        f" (add_eos={output_features[key].add_eos})"
    )
  return budget


@seqio.map_over_dataset(num_seeds=2)
def _split_random_chunk(
    features, seeds, *, key: str, inputs_max: int, targets_max: int
):
  """Cuts one random chunk from `features[key]` and splits it in two."""
  tokens = features[key]
  n = tf.size(tokens)
  chunk_len = tf.minimum(n, inputs_max + targets_max)
  start = tf.random.stateless_uniform(
      [], seed=seeds[0], minval=0, maxval=n - chunk_len + 1, dtype=tf.int32
  )
  chunk = tokens[start : start + chunk_len]
  # Both halves non-empty and within budget; the range is never empty
  # because 2 <= chunk_len <= inputs_max + targets_max.
  lowest = tf.maximum(1, chunk_len - targets_max)
  highest = tf.minimum(inputs_max, chunk_len - 1)
  split = tf.random.stateless_uniform(
      [], seed=seeds[1], minval=lowest, maxval=highest + 1, dtype=tf.int32
  )
  return {"inputs": chunk[:split], "targets": chunk[split:]}


def prefix_lm(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, Optional[int]],
    output_features: Mapping[str, seqio.Feature],
    key: str = "targets",
) -> tf.data.Dataset:
  """Prefix-LM examples from tokenized documents in `features[key]`.

  Each document gives one example: a chunk of at most
  `inputs_len + targets_len` tokens (less room for EOS where the feature adds
  one) starting at a random offset, split at a random point so that `inputs`
  and `targets` are both non-empty and fit their lengths. `inputs` followed
  by `targets` is exactly the chunk. Documents shorter than two tokens are
  dropped. Randomness comes from seqio's per-preprocessor seeds, so a task's
  output is fixed by the seed given to `get_dataset`.

  Args:
    dataset: examples with a 1-D int token tensor under `key`.
    sequence_length: must give lengths for "inputs" and "targets".
    output_features: the task's features (for their `add_eos`).
    key: the feature holding the document's tokens.

  Returns:
    A dataset of {"inputs", "targets"} token examples; other features are
    dropped because they describe the whole document, not the split.
  """
  inputs_max = _token_budget("inputs", sequence_length, output_features)
  targets_max = _token_budget("targets", sequence_length, output_features)
  dataset = dataset.filter(lambda x: tf.size(x[key]) >= 2)
  return _split_random_chunk(  # pylint: disable=unexpected-keyword-arg
      dataset, key=key, inputs_max=inputs_max, targets_max=targets_max
  )
