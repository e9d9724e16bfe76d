"""A small seqio task for trainer tests: reverse a few words.

Registered on import (gin: MIXTURE_OR_TASK_MODULE="tests.trainer.fixture_task").
Examples come from a seeded generator; the vocabulary is seqio's byte
vocabulary (259 ids), so no model file is needed.
"""

import random

import seqio
import tensorflow as tf

from lta.model.config import T5Config

TASK = "lta_test.reverse_words"
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


def _dataset_fn(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  del shuffle_files, seed  # One in-memory shard.
  rows = examples(split)
  return tf.data.Dataset.from_tensor_slices({
      "inputs": [r["inputs"] for r in rows],
      "targets": [r["targets"] for r in rows]})


def register() -> None:
  if TASK in seqio.TaskRegistry.names():
    return
  vocabulary = seqio.ByteVocabulary()
  seqio.TaskRegistry.add(
      TASK,
      source=seqio.FunctionDataSource(_dataset_fn,
                                      splits=tuple(NUM_EXAMPLES),
                                      num_input_examples=NUM_EXAMPLES),
      preprocessors=[seqio.preprocessors.tokenize,
                     seqio.preprocessors.append_eos_after_trim],
      output_features={
          "inputs": seqio.Feature(vocabulary, add_eos=True),
          "targets": seqio.Feature(vocabulary, add_eos=True)})


register()
