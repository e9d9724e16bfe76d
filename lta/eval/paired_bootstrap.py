"""Paired differences to a baseline over seeds and examples, with intervals.

The miniature (lta.jobs.miniature) scores every method on the same test
examples in every seed, so each example gives a paired difference
d[seed, target, example] = method score - baseline score. The effect is
their mean over seeds, targets and examples: the target average of the
paper's tables, averaged over seeds.

Its confidence interval comes from a two-stage (hierarchical) percentile
bootstrap, the usual scheme for nested data:
  1. draw as many seeds as there are, with replacement;
  2. for each drawn seed and each target, draw that target's examples
     with replacement (a seed drawn twice gets two independent draws).
The replicate is the mean of the drawn differences, with every target
weighted equally. Stage 1 carries the spread between seeds (training
noise, and pre-training noise when each seed has its own base); stage 2
the sampling noise of the test set. With one seed it is the ordinary
paired bootstrap over examples.

The verdict is read from the interval, not from the mean: "better" when
it lies above 0, "worse" when below, "inconclusive" when it holds 0.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from lta import errors

NUM_SAMPLES = 2000
CONFIDENCE = 0.95
OUTCOMES = ("better", "worse", "inconclusive")


@dataclasses.dataclass(frozen=True)
class PairedEffect:
  """A paired difference to the baseline and how sure we are of its sign."""
  mean: float
  low: float
  high: float
  confidence: float
  # (seed, target) pairs whose mean difference is > 0 and < 0, of n_pairs.
  pairs_better: int
  pairs_worse: int
  n_pairs: int
  n_seeds: int
  n_examples: int  # per (seed, target)

  @property
  def outcome(self) -> str:
    if self.low > 0:
      return "better"
    if self.high < 0:
      return "worse"
    return "inconclusive"

  def to_dict(self) -> dict:
    return {**dataclasses.asdict(self), "outcome": self.outcome}


def _as_differences(differences) -> np.ndarray:
  d = np.asarray(differences, dtype=np.float64)
  if d.ndim != 3 or 0 in d.shape:
    raise errors.DataError(
        f"paired differences must be a non-empty [seeds, targets, examples] "
        f"array, got shape {d.shape}")
  if not np.all(np.isfinite(d)):
    raise errors.DataError("paired differences hold NaN or inf")
  return d


def bootstrap_replicates(differences, num_samples: int = NUM_SAMPLES,
                         seed: int = 0) -> np.ndarray:
  """`num_samples` replicates of the mean difference (the module's scheme).

  Args:
    differences: [seeds, targets, examples] paired differences.
    num_samples: bootstrap replicates.
    seed: of the resampling.
  """
  d = _as_differences(differences)
  if num_samples < 1:
    raise errors.ConfigError(f"num_samples must be positive, got "
                             f"{num_samples}")
  n_seeds, n_targets, n_examples = d.shape
  rng = np.random.default_rng(seed)
  drawn_seeds = rng.integers(0, n_seeds, size=(num_samples, n_seeds))
  total = np.zeros(num_samples)
  for slot in range(n_seeds):
    rows = drawn_seeds[:, slot][:, None]
    for target in range(n_targets):
      examples = rng.integers(0, n_examples, size=(num_samples, n_examples))
      total += d[rows, target, examples].mean(axis=1)
  return total / (n_seeds * n_targets)


def paired_effect(differences, num_samples: int = NUM_SAMPLES,
                  confidence: float = CONFIDENCE,
                  seed: int = 0) -> PairedEffect:
  """The mean paired difference, its percentile interval and pair counts."""
  if not 0.0 < confidence < 1.0:
    raise errors.ConfigError(f"confidence must be in (0, 1), got "
                             f"{confidence}")
  d = _as_differences(differences)
  replicates = bootstrap_replicates(d, num_samples, seed)
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(replicates, [tail, 100.0 - tail])
  pair_means = d.mean(axis=2)
  return PairedEffect(
      mean=float(d.mean()), low=float(low), high=float(high),
      confidence=confidence,
      pairs_better=int((pair_means > 0).sum()),
      pairs_worse=int((pair_means < 0).sum()), n_pairs=int(pair_means.size),
      n_seeds=d.shape[0], n_examples=d.shape[2])


def verdict_sentence(effect: PairedEffect, method: str, metric_name: str,
                     baseline: str = "the baseline") -> str:
  """One sentence whose claim follows from the interval alone."""
  ci = (f"Δ = {effect.mean:+.2f}, {effect.confidence:.0%} CI "
        f"[{effect.low:+.2f}, {effect.high:+.2f}]")
  claim = {
      "better": f"beats {baseline}: the interval ({ci}) lies above 0",
      "worse": f"is worse than {baseline}: the interval ({ci}) lies below 0",
      "inconclusive": (f"is not distinguishable from {baseline}: the "
                       f"interval ({ci}) contains 0"),
  }[effect.outcome]
  return (f"{metric_name}: {method} {claim}; better in "
          f"{effect.pairs_better} of {effect.n_pairs} (seed, target) pairs, "
          f"worse in {effect.pairs_worse} ({_count(effect.n_seeds, 'seed')}"
          f", {_count(effect.n_examples, 'test example')} per target).")


def _count(n: int, noun: str) -> str:
  return f"{n} {noun}" + ("" if n == 1 else "s")


def effect_cell(effect: PairedEffect) -> str:
  """A table cell: mean [low, high] and a mark of the outcome."""
  mark = {"better": " ▲", "worse": " ▼", "inconclusive": ""}[effect.outcome]
  return f"{effect.mean:+.1f} [{effect.low:+.1f}, {effect.high:+.1f}]{mark}"


def stack_differences(method_scores: Sequence[Sequence[Sequence[float]]],
                      baseline_scores: Sequence[Sequence[Sequence[float]]]
                      ) -> np.ndarray:
  """[seeds][targets][examples] scores of a method and its baseline -> d."""
  a = np.asarray(method_scores, dtype=np.float64)
  b = np.asarray(baseline_scores, dtype=np.float64)
  if a.shape != b.shape:
    raise errors.DataError(f"paired scores differ in shape: method "
                           f"{a.shape}, baseline {b.shape}")
  return _as_differences(a - b)
