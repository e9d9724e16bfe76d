"""The miniature's statistics on constructed cases with a known answer."""

import numpy as np
import pytest

from lta import errors
from lta.eval import paired_bootstrap as pb


def test_a_constant_difference_gives_a_degenerate_interval_at_it():
  effect = pb.paired_effect(np.full((5, 4, 32), 1.5), num_samples=500)
  assert effect.mean == pytest.approx(1.5)
  assert effect.low == pytest.approx(1.5, abs=1e-12)
  assert effect.high == pytest.approx(1.5, abs=1e-12)
  assert effect.outcome == "better"
  assert (effect.pairs_better, effect.pairs_worse, effect.n_pairs) == (
      20, 0, 20)


def test_symmetric_noise_gives_an_interval_around_zero():
  # Every (seed, target) holds the same values with both signs: mean 0
  # (integers, so that the sums are exact).
  rng = np.random.default_rng(3)
  half = rng.integers(1, 20, size=(5, 4, 64)).astype(float)
  effect = pb.paired_effect(np.concatenate([half, -half], axis=2))
  assert effect.mean == pytest.approx(0.0, abs=1e-12)
  assert effect.low < 0 < effect.high
  assert effect.low == pytest.approx(-effect.high, rel=0.25)
  assert effect.outcome == "inconclusive"
  assert (effect.pairs_better, effect.pairs_worse) == (0, 0)
  sentence = pb.verdict_sentence(effect, "add and subtract", "ROUGE-2")
  assert "is not distinguishable from the baseline" in sentence
  assert "contains 0" in sentence


def test_seeds_are_resampled_first_two_seeds_give_the_binomial_law():
  # Constant within seed: only stage 1 varies. Drawing 2 of {0, 2} gives a
  # mean of 0, 1 or 2 with probabilities 1/4, 1/2, 1/4.
  d = np.stack([np.zeros((2, 16)), np.full((2, 16), 2.0)])
  reps = pb.bootstrap_replicates(d, num_samples=4000)
  values, counts = np.unique(np.round(reps, 9), return_counts=True)
  assert values.tolist() == [0.0, 1.0, 2.0]
  np.testing.assert_allclose(counts / 4000, [0.25, 0.5, 0.25], atol=0.03)
  effect = pb.paired_effect(d, num_samples=4000)
  assert (effect.low, effect.high) == pytest.approx((0.0, 2.0))
  assert effect.outcome == "inconclusive"
  assert (effect.pairs_better, effect.pairs_worse) == (2, 0)


def test_one_seed_matches_the_analytic_standard_error():
  # One seed, one target: the plain bootstrap of a mean, whose spread is
  # the sample std / sqrt(n); its 95% interval is about ±1.96 of that.
  rng = np.random.default_rng(0)
  x = rng.choice([0.0, 1.0], p=[0.7, 0.3], size=(1, 1, 400))
  reps = pb.bootstrap_replicates(x, num_samples=4000)
  standard_error = x.std() / np.sqrt(x.size)
  assert reps.std() == pytest.approx(standard_error, rel=0.08)
  effect = pb.paired_effect(x, num_samples=4000)
  assert (effect.high - effect.low) / 2 == pytest.approx(
      1.96 * standard_error, rel=0.1)


def test_targets_weigh_equally_and_a_clear_loss_is_worse():
  d = np.stack([np.stack([np.full(8, -1.0), np.full(8, -3.0)])] * 3)
  effect = pb.paired_effect(d, num_samples=200)
  assert effect.mean == pytest.approx(-2.0)
  assert effect.outcome == "worse"
  assert pb.effect_cell(effect) == "-2.0 [-2.0, -2.0] ▼"
  assert "lies below 0" in pb.verdict_sentence(effect, "m", "ROUGE-2")


def test_bad_input_is_refused():
  with pytest.raises(errors.DataError, match="shape"):
    pb.paired_effect(np.zeros((3, 8)))
  with pytest.raises(errors.DataError, match="NaN"):
    pb.paired_effect(np.full((1, 1, 2), np.nan))
  with pytest.raises(errors.DataError, match="differ in shape"):
    pb.stack_differences(np.zeros((2, 2, 3)), np.zeros((2, 2, 4)))
  with pytest.raises(errors.ConfigError, match="confidence"):
    pb.paired_effect(np.zeros((1, 1, 2)), confidence=1.0)
