"""The λ sweep: score each λ on validation, pick per target, report on test."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import gin

ByLambda = dict[str, dict[float, float]]  # language -> λ -> score


@gin.configurable
def lambda_grid(lambdas: Sequence[float] = (0.3, 0.5, 0.7, 0.9)
                ) -> tuple[float, ...]:
  """The λ values to try; bind `lambda_grid.lambdas` to change them."""
  grid = tuple(float(x) for x in lambdas)
  if not grid or any(not 0.0 <= x <= 1.0 for x in grid):
    raise ValueError(f"lambda_grid.lambdas must be values in [0, 1], got "
                     f"{lambdas!r}")
  return grid


def sweep(score_fn: Callable[[float], Mapping[str, float]],
          lambdas: Sequence[float]) -> ByLambda:
  """Calls score_fn(λ) -> {language: score} for each λ."""
  out: ByLambda = {}
  for lam in lambdas:
    for lang, score in score_fn(lam).items():
      out.setdefault(lang, {})[float(lam)] = float(score)
  return out


def best_lambda(scores: ByLambda) -> dict[str, float]:
  """Per language, the λ with the highest score (ties: the larger λ)."""
  if not scores:
    raise ValueError("No sweep scores to choose λ from.")
  return {lang: max(by_lambda, key=lambda lam: (by_lambda[lam], lam))
          for lang, by_lambda in scores.items()}
