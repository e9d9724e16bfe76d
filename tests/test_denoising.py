"""BERT-style denoising examples: a masked chunk in, the same chunk out."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from lta.data import denoising

FEATURES = {k: seqio.Feature(seqio.PassThroughVocabulary(100), add_eos=True)
            for k in ("inputs", "targets")}


def _examples(docs, lengths, density=0.5, seed=0):
  ds = tf.data.Dataset.from_generator(
      lambda: ({"targets": np.asarray(d, np.int32)} for d in docs),
      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  with seqio.utils.map_seed_manager(seed):
    out = denoising.denoise(ds, lengths, FEATURES, noise_density=density)
  return list(out.as_numpy_iterator())


def test_targets_are_a_chunk_and_inputs_differ_only_by_masks():
  docs = [list(range(10, 60)), list(range(3, 8)), [7]]
  examples = _examples(docs, {"inputs": 64, "targets": 9})
  assert len(examples) == 3
  for doc, ex in zip(docs, examples):
    chunk, masked = ex["targets"], ex["inputs"]
    assert len(chunk) == min(len(doc), 8)  # 9 less room for EOS
    start = doc.index(chunk[0])
    assert list(chunk) == doc[start:start + len(chunk)]
    same = masked == chunk
    assert np.all(masked[~same] == denoising.MASK_ID)
  long = examples[0]
  assert 0 < np.sum(long["inputs"] == denoising.MASK_ID) < 8


def test_same_seed_same_examples_and_bad_density_rejected():
  docs = [list(range(10, 60))] * 4
  lengths = {"inputs": 32, "targets": 17}
  a, b = _examples(docs, lengths, seed=3), _examples(docs, lengths, seed=3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
  with pytest.raises(ValueError, match="noise_density"):
    _examples(docs, lengths, density=1.0)
