"""lta.data.preprocessors.prefix_lm: T5's prefix-LM objective, step for step."""

import collections

import numpy as np
import pytest
from scipy import stats
import seqio
import tensorflow as tf

from lta import errors
from lta.data import preprocessors

FEATURES = {
    "inputs": seqio.Feature(seqio.PassThroughVocabulary(2000), add_eos=True),
    "targets": seqio.Feature(seqio.PassThroughVocabulary(2000), add_eos=True),
}
LENGTHS = {"inputs": 9, "targets": 7}  # Segments of 8 tokens (1 for EOS).
# The chance that a correct implementation fails a uniformity test below,
# over seeds; the tests use fixed seeds, so they are deterministic.
FALSE_ALARM_RATE = 1e-4


def _documents(lengths):
  docs = [np.arange(100_000 * (i + 1), 100_000 * (i + 1) + n, dtype=np.int32)
          for i, n in enumerate(lengths)]
  ds = tf.data.Dataset.from_generator(
      lambda: ({"targets": d} for d in docs),
      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  return docs, ds


def _prefix_lm(ds, seed, lengths=LENGTHS, **kwargs):
  with seqio.utils.map_seed_manager(seed):
    out = preprocessors.prefix_lm(ds, lengths, FEATURES, **kwargs)
  return [{k: v.tolist() for k, v in ex.items()} for ex in out.as_numpy_iterator()]


def _by_document(examples):
  """Examples grouped by document (ids encode it: 100000 * (index + 1))."""
  groups = collections.defaultdict(list)
  for ex in examples:
    first = (ex["inputs"] or ex["targets"])[0]
    groups[first // 100_000 - 1].append(ex)
  return groups


def test_long_document_gives_one_example_per_segment_covering_it():
  docs, ds = _documents([50])
  examples = _prefix_lm(ds, seed=42)
  # 50 tokens in segments of 8: six full ones and one of 2.
  assert len(examples) == 7
  segments = [ex["inputs"] + ex["targets"] for ex in examples]
  assert [len(s) for s in segments] == [8] * 6 + [2]
  assert sum(segments, []) == docs[0].tolist()
  for ex in examples:
    assert len(ex["inputs"]) >= 1 and len(ex["targets"]) >= 1


def test_every_document_is_covered_and_short_ones_are_kept():
  lengths = [1, 2, 3, 7, 8, 9, 16, 17, 40, 200]
  docs, ds = _documents(lengths)
  examples = _prefix_lm(ds, seed=7)
  by_doc = _by_document(examples)
  assert sorted(by_doc) == list(range(len(docs)))
  for i, doc in enumerate(docs):
    segments = [ex["inputs"] + ex["targets"] for ex in by_doc[i]]
    assert sum(segments, []) == doc.tolist()
    assert len(segments) == -(-len(doc) // 8)
  # A one-token document: empty inputs, the token as targets (as in T5).
  assert by_doc[0] == [{"inputs": [], "targets": docs[0].tolist()}]


def test_empty_documents_are_dropped():
  _, ds = _documents([0, 3, 0])
  assert len(_prefix_lm(ds, seed=0)) == 1


def test_split_point_is_uniform_over_every_position():
  # One 11-token segment per document: k is uniform on {1, ..., 10}.
  _, ds = _documents([11] * 3000)
  examples = _prefix_lm(ds, seed=3, lengths={"inputs": 64, "targets": 64})
  counts = collections.Counter(len(ex["inputs"]) for ex in examples)
  assert set(counts) == set(range(1, 11))
  observed = [counts[k] for k in range(1, 11)]
  assert stats.chisquare(observed).pvalue > FALSE_ALARM_RATE


def test_mt5_lengths_split_long_documents_anywhere():
  # The paper's lengths: 512 inputs, 128 targets. Documents of 1,000 tokens
  # give a 511-token segment and a 489-token one; the split point of the
  # full segments is uniform on {1, ..., 510}, never a fixed 511 / 127.
  _, ds = _documents([1000] * 600)
  examples = _prefix_lm(ds, seed=11, lengths={"inputs": 512, "targets": 128})
  assert len(examples) == 1200
  full = [len(ex["inputs"]) for ex in examples
          if len(ex["inputs"]) + len(ex["targets"]) == 511]
  assert len(full) == 600
  # Continuous-uniform KS on (k - U(0,1)) / 510, exact for a discrete
  # uniform k on {1, ..., 510} jittered into (0, 510].
  jitter = np.random.default_rng(0).uniform(size=len(full))
  scaled = (np.asarray(full) - jitter) / 510
  assert stats.kstest(scaled, "uniform").pvalue > FALSE_ALARM_RATE


def test_chunk_of_a_very_long_document_is_one_grid_chunk():
  docs, ds = _documents([50] * 30)
  by_doc = _by_document(_prefix_lm(ds, seed=5, max_chunk_tokens=20))
  starts = set()
  for i, doc in enumerate(docs):
    tokens = sum((ex["inputs"] + ex["targets"] for ex in by_doc[i]), [])
    start = tokens[0] - doc[0]
    assert start in (0, 20, 40)
    assert tokens == doc[start:start + 20].tolist()
    starts.add(int(start))
  assert starts == {0, 20, 40}


def test_known_seed_gives_known_examples_and_seed_matters():
  _, ds = _documents([100] * 8)
  first = _prefix_lm(ds, seed=1)
  assert first == _prefix_lm(ds, seed=1)
  assert first != _prefix_lm(ds, seed=2)


def test_without_eos_the_whole_input_length_is_a_segment():
  features = {k: seqio.Feature(f.vocabulary, add_eos=False)
              for k, f in FEATURES.items()}
  _, ds = _documents([100])
  with seqio.utils.map_seed_manager(3):
    out = list(preprocessors.prefix_lm(
        ds, {"inputs": 4, "targets": 4}, features).as_numpy_iterator())
  assert [len(ex["inputs"]) + len(ex["targets"]) for ex in out] == [4] * 25


@pytest.mark.parametrize("lengths, message", [
    (None, "inputs"),
    ({"inputs": 8}, "targets"),
    ({"inputs": 1, "targets": 8}, "no room"),
])
def test_bad_sequence_lengths_are_rejected(lengths, message):
  _, ds = _documents([10])
  with pytest.raises(errors.ConfigError, match=message):
    preprocessors.prefix_lm(ds, lengths, FEATURES)
