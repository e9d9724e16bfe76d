"""A small seqio task for trainer tests: reverse a few words.

Registered on import (gin: MIXTURE_OR_TASK_MODULE="tests.trainer.fixture_task").
Examples come from a seeded generator; the vocabulary is seqio's byte
vocabulary (259 ids), so no model file is needed.

LOGGED_TASK reads the same examples as an endless stream: example `i` is
row `i % 512`, and its source appends `i` to the file named by the
environment variable READ_LOG_ENV with tf.print, a TF op that tf.data's
iterator checkpoints allow. The file shows which examples a run read.
LOGGED_PY_TASK is the same stream with its indices drawn from a Python
generator, which tf.data cannot checkpoint.
"""

import functools
import itertools
import os
import random

import seqio
import tensorflow as tf

from lta.models.mt5.config import T5Config

TASK = "lta_test.reverse_words"
LOGGED_TASK = "lta_test.reverse_words_logged"
LOGGED_PY_TASK = "lta_test.reverse_words_logged_py"
# TASK's training data, 17 validation examples: 2 shards of 9 and 8.
UNEVEN_EVAL_TASK = "lta_test.reverse_words_17_eval"
UNEVEN_EVAL_EXAMPLES = 17
READ_LOG_ENV = "LTA_TEST_READ_LOG"
LENGTHS = {"inputs": 32, "targets": 16}
NUM_EXAMPLES = {"train": 512, "validation": 32}
_WORDS = ("ab", "cd", "ef", "gh", "ij", "kl", "mn", "op")

# 4 heads and an even vocabulary: every sharded axis splits over model=2.
CONFIG = T5Config(vocab_size=260, d_model=32, d_kv=8, num_heads=4, d_ff=64,
                  num_encoder_layers=2, num_decoder_layers=2,
                  relative_attention_num_buckets=8,
                  relative_attention_max_distance=16, dropout_rate=0.0,
                  name="trainer-test")


def examples(split: str) -> list[dict[str, str]]:
  rng = random.Random(f"{TASK}/{split}")
  out = []
  for _ in range(NUM_EXAMPLES[split]):
    words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 4))]
    out.append({"inputs": "reverse: " + " ".join(words),
                "targets": " ".join(reversed(words))})
  return out


def _dataset_fn(split: str, shuffle_files: bool, seed=None, *,
                num_validation=None) -> tf.data.Dataset:
  del shuffle_files, seed  # One in-memory shard.
  rows = examples(split)
  if split == "validation":
    rows = rows[:num_validation]
  return tf.data.Dataset.from_tensor_slices({
      "inputs": [r["inputs"] for r in rows],
      "targets": [r["targets"] for r in rows]})


def _logged_dataset_fn(split: str, shuffle_files: bool, seed=None, *,
                       python_indices: bool = False) -> tf.data.Dataset:
  del shuffle_files, seed
  rows = examples(split)
  inputs = tf.constant([r["inputs"] for r in rows])
  targets = tf.constant([r["targets"] for r in rows])
  log = "file://" + os.environ[READ_LOG_ENV]

  def read(i):
    tf.print(i, output_stream=log)
    return {"inputs": tf.gather(inputs, i % len(rows)),
            "targets": tf.gather(targets, i % len(rows))}

  indices = (tf.data.Dataset.from_generator(
      itertools.count, output_signature=tf.TensorSpec((), tf.int64))
             if python_indices else tf.data.Dataset.range(2**62))
  return indices.map(read)


def read_log(path: str) -> list[int]:
  """The example indices a LOGGED_TASK pipeline read, in order."""
  with open(path) as f:
    return [int(line) for line in f.read().split()]


def register() -> None:
  if TASK in seqio.TaskRegistry.names():
    return
  vocabulary = seqio.ByteVocabulary()
  uneven = {**NUM_EXAMPLES, "validation": UNEVEN_EVAL_EXAMPLES}
  for name, dataset_fn, counts in (
      (TASK, _dataset_fn, NUM_EXAMPLES),
      (LOGGED_TASK, _logged_dataset_fn, NUM_EXAMPLES),
      (LOGGED_PY_TASK, functools.partial(_logged_dataset_fn,
                                         python_indices=True), NUM_EXAMPLES),
      (UNEVEN_EVAL_TASK, functools.partial(
          _dataset_fn, num_validation=UNEVEN_EVAL_EXAMPLES), uneven)):
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(dataset_fn,
                                        splits=tuple(counts),
                                        num_input_examples=counts),
        preprocessors=[seqio.preprocessors.tokenize,
                       seqio.preprocessors.append_eos_after_trim],
        output_features={
            "inputs": seqio.Feature(vocabulary, add_eos=True),
            "targets": seqio.Feature(vocabulary, add_eos=True)})


register()
