"""lta.preprocessors.prefix_lm: T5's prefix-LM objective."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from lta import preprocessors

FEATURES = {
    "inputs": seqio.Feature(seqio.PassThroughVocabulary(2000), add_eos=True),
    "targets": seqio.Feature(seqio.PassThroughVocabulary(2000), add_eos=True),
}
LENGTHS = {"inputs": 9, "targets": 7}  # 8 + 6 tokens fit beside the EOS.


def _documents(lengths):
  docs = [np.arange(1000 * (i + 1), 1000 * (i + 1) + n, dtype=np.int32)
          for i, n in enumerate(lengths)]
  ds = tf.data.Dataset.from_generator(
      lambda: ({"targets": d} for d in docs),
      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  return docs, ds


def _prefix_lm(ds, seed, lengths=LENGTHS):
  with seqio.utils.map_seed_manager(seed):
    out = preprocessors.prefix_lm(ds, lengths, FEATURES)
  return [{k: v.tolist() for k, v in ex.items()} for ex in out.as_numpy_iterator()]


def _is_slice(chunk, doc):
  doc = list(doc)
  return any(doc[i:i + len(chunk)] == chunk for i in range(len(doc) - len(chunk) + 1))


def test_known_seed_gives_known_split():
  docs, ds = _documents([50])
  (example,) = _prefix_lm(ds, seed=42)
  again, = _prefix_lm(ds, seed=42)
  assert example == again
  chunk = example["inputs"] + example["targets"]
  # The chunk is 8 + 6 consecutive tokens of the document.
  assert len(chunk) == 14
  assert chunk == list(range(chunk[0], chunk[0] + 14))
  assert _is_slice(chunk, docs[0])
  assert 1 <= len(example["inputs"]) <= 8 and 1 <= len(example["targets"]) <= 6


def test_lengths_stay_in_bounds_and_reconstruct_the_chunk():
  lengths = [2, 3, 5, 13, 14, 15, 40, 200] * 5
  docs, ds = _documents(lengths)
  examples = _prefix_lm(ds, seed=7)
  assert len(examples) == len(docs)
  splits = set()
  for doc, ex in zip(docs, examples):
    chunk = ex["inputs"] + ex["targets"]
    assert len(chunk) == min(len(doc), 14)
    assert _is_slice(chunk, doc)
    assert 1 <= len(ex["inputs"]) <= 8
    assert 1 <= len(ex["targets"]) <= 6
    splits.add(len(ex["inputs"]))
  assert len(splits) > 3  # The split point really is random.


def test_seed_changes_the_examples():
  _, ds = _documents([100] * 8)
  assert _prefix_lm(ds, seed=1) != _prefix_lm(ds, seed=2)


def test_documents_under_two_tokens_are_dropped():
  _, ds = _documents([0, 1, 2])
  (example,) = _prefix_lm(ds, seed=0)
  assert (len(example["inputs"]), len(example["targets"])) == (1, 1)


def test_without_eos_the_whole_length_is_used():
  features = {k: seqio.Feature(f.vocabulary, add_eos=False) for k, f in FEATURES.items()}
  _, ds = _documents([100])
  with seqio.utils.map_seed_manager(3):
    (ex,) = list(preprocessors.prefix_lm(ds, {"inputs": 4, "targets": 4}, features)
                 .as_numpy_iterator())
  assert len(ex["inputs"]) + len(ex["targets"]) == 8


@pytest.mark.parametrize("lengths, message", [
    (None, "inputs"),
    ({"inputs": 8}, "targets"),
    ({"inputs": 1, "targets": 8}, "no room"),
])
def test_bad_sequence_lengths_are_rejected(lengths, message):
  _, ds = _documents([10])
  with pytest.raises(ValueError, match=message):
    preprocessors.prefix_lm(ds, lengths, FEATURES)
