"""Bootstrap confidence intervals."""

import numpy as np
import pytest

from lta.eval import metrics


def _scores(n, seed=0):
  return np.random.default_rng(seed).uniform(0, 100, size=n)


def test_interval_contains_the_mean_and_is_deterministic():
  scores = _scores(200)
  mean, low, high = metrics.bootstrap_ci(scores, seed=3)
  assert mean == pytest.approx(np.mean(scores))
  assert low < mean < high
  assert metrics.bootstrap_ci(scores, seed=3) == (mean, low, high)
  assert metrics.bootstrap_ci(scores, seed=4) != (mean, low, high)


def test_interval_narrows_with_more_data_and_lower_confidence():
  small = metrics.bootstrap_ci(_scores(50), seed=0)
  large = metrics.bootstrap_ci(_scores(5000), seed=0)
  assert large[2] - large[1] < (small[2] - small[1]) / 5
  narrow = metrics.bootstrap_ci(_scores(50), confidence=0.5, seed=0)
  assert narrow[2] - narrow[1] < small[2] - small[1]


def test_interval_matches_the_normal_approximation():
  scores = _scores(2000, seed=1)
  mean, low, high = metrics.bootstrap_ci(scores, num_samples=4000, seed=0)
  half = 1.96 * np.std(scores) / np.sqrt(scores.size)
  assert high - low == pytest.approx(2 * half, rel=0.1)
  assert (low + high) / 2 == pytest.approx(mean, abs=0.1 * half)


def test_constant_scores_give_a_point_interval():
  assert metrics.bootstrap_ci([42.0] * 10) == (42.0, 42.0, 42.0)


def test_metric_fn_bootstrap_equals_per_example_bootstrap_for_means():
  targets = [["Paris"], ["Москва"], ["ঢাকা"], ["北京"], ["Helsinki"],
             ["Jakarta"]] * 5
  preds = ["paris", "Москва, Россия", "ঢাকা।", "北京", "Helsinki", "Bogor"] * 5
  per = metrics.squad_per_example(targets, preds)["f1"]
  via_fn = metrics.bootstrap_metric_ci(
      lambda t, p: metrics.squad_f1_em(t, p)["f1"], targets, preds,
      num_samples=200, seed=7)
  via_scores = metrics.bootstrap_ci(per, num_samples=200, seed=7)
  np.testing.assert_allclose(via_fn, via_scores, rtol=1e-12)


def test_bad_arguments():
  with pytest.raises(ValueError, match="non-empty 1-D"):
    metrics.bootstrap_ci([])
  with pytest.raises(ValueError, match="confidence"):
    metrics.bootstrap_ci([1.0], confidence=1.0)
  with pytest.raises(ValueError, match="num_samples"):
    metrics.bootstrap_ci([1.0], num_samples=0)
