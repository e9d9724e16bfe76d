"""T5's BERT-style denoising objective, for pre-training a base from scratch.

Raffel et al. (2020, sec. 3.3.1) compare pre-training objectives; in the
"BERT-style" one the model reads text with 15 % of its tokens masked and
writes the original text back. The miniature pre-trains its tiny base on
this together with prefix-LM: prefix-LM alone never asks the decoder to
copy from the encoder, and a base pre-trained on it alone did not learn the
copying that summarization needs (docs/miniature.md). mT5 gets that ability
from scale; a tiny model needs it taught.

`register(lang)` adds `mc4_denoise.<lang>` on the same mC4 source as
`mc4_prefix_lm.<lang>`: one random chunk of each document, as long as the
targets allow, masked in `inputs`, whole in `targets`.
"""

from __future__ import annotations

import functools

import seqio
import tensorflow as tf

from lta import errors
from lta.data import input_pipeline
from lta.data import preprocessors
from lta.data import vocab

NOISE_DENSITY = 0.15
# The mask: SentencePiece's UNK, which encoded text never contains because
# the vocabulary falls back to bytes.
MASK_ID = 2


@seqio.map_over_dataset(num_seeds=2)
def _mask_random_chunk(features, seeds, *, key: str, max_tokens: int,
                       noise_density: float):
  tokens = features[key]
  n = tf.size(tokens)
  length = tf.minimum(n, max_tokens)
  start = tf.random.stateless_uniform(
      [], seed=seeds[0], minval=0, maxval=n - length + 1, dtype=tf.int32)
  chunk = tokens[start:start + length]
  noise = tf.random.stateless_uniform([length], seed=seeds[1]) < noise_density
  return {"inputs": tf.where(noise, tf.constant(MASK_ID, chunk.dtype), chunk),
          "targets": chunk}


def denoise(dataset: tf.data.Dataset, sequence_length, output_features,
            key: str = "targets",
            noise_density: float = NOISE_DENSITY) -> tf.data.Dataset:
  """A seqio preprocessor: masked chunk -> the chunk."""
  if not 0.0 <= noise_density < 1.0:
    raise errors.ConfigError(
        f"noise_density must be in [0, 1), got {noise_density}")
  budget = min(
      preprocessors.token_budget(k, sequence_length, output_features)
      for k in ("inputs", "targets"))
  dataset = dataset.filter(lambda x: tf.size(x[key]) >= 1)
  return _mask_random_chunk(dataset, key=key, max_tokens=budget,  # pylint: disable=unexpected-keyword-arg
                            noise_density=noise_density)


def task_name(lang: str) -> str:
  return f"mc4_denoise.{lang.replace('-', '_')}"


def register(lang: str) -> str:
  """Registers `mc4_denoise.<lang>` (once) and returns its name."""
  name = task_name(lang)
  if name not in seqio.TaskRegistry.names():
    input_pipeline.import_task_modules("lta_tasks")  # mc4_prefix_lm.<lang>
    source = seqio.get_mixture_or_task(
        f"mc4_prefix_lm.{lang.replace('-', '_')}").source
    seqio.TaskRegistry.add(
        name, source=source,
        preprocessors=[
            functools.partial(seqio.preprocessors.rekey,
                              key_map={"targets": "text"}),
            seqio.preprocessors.tokenize,
            denoise,
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=vocab.output_features(), metric_fns=[])
  return name
