"""The λ sweep: score each λ on validation, pick per target, report on test."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

from lta.arithmetic import compat
from lta.errors import ConfigError

ByLambda = dict[str, dict[float, float]]  # language -> λ -> score

# The λ grid a sweep uses when its config names none (PipelineConfig.lambdas);
# gin files bind their own (gin/runs/pipeline.gin, the tables' LAMBDA).
DEFAULT_GRID = (0.3, 0.5, 0.7, 0.9)


def check_lambdas(lambdas: Union[float, Sequence[float]], *,
                  allow_extrapolation: bool = False, name: str = "lambdas",
                  switch: str = "allow_extrapolation=True"
                  ) -> tuple[float, ...]:
  """One λ or a grid, as floats: finite, in [0, 1] unless extrapolating.

  name and switch name the binding and its extrapolation switch in errors.
  """
  if isinstance(lambdas, (int, float)):
    return (compat.check_lambda(lambdas, allow_extrapolation=
                                allow_extrapolation, name=name,
                                switch=switch),)
  grid = tuple(lambdas)
  if not grid:
    raise ConfigError(f"{name} is empty; give at least one λ")
  return tuple(compat.check_lambda(lam, allow_extrapolation=
                                   allow_extrapolation, name=f"{name}[{i}]",
                                   switch=switch)
               for i, lam in enumerate(grid))


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
