"""Per-example scores of a run, re-read from its predictions.jsonl.

A run's scores.json holds means over test examples; paired statistics
(lta.eval.paired_bootstrap) need each example's score. They are recomputed
here from the decoded predictions the run wrote (lta.eval.report), and
checked against the run's own means, so the two can never disagree
silently.
"""

from __future__ import annotations

import collections
import json
from typing import Mapping, Optional, Sequence

import numpy as np

from lta import errors
from lta.eval import langid
from lta.eval import metrics

PREDICTIONS_FILE = "predictions.jsonl"
METRICS = ("rouge2", "exact_match", "language_fidelity", "f1", "em")
# Means of the recomputed scores may differ from the run's by rounding only.
TOLERANCE = 1e-6


def read_predictions(path: str, split: str = "test"
                     ) -> dict[tuple[str, str], list[dict]]:
  """(method label, language) -> the decoded examples of `split`, in order."""
  grouped = collections.defaultdict(list)
  with open(path, encoding="utf-8") as f:
    for line in f:
      record = json.loads(line)
      if record.get("split") == split:
        grouped[(record["method"], record["language"])].append(record)
  for records in grouped.values():
    records.sort(key=lambda r: r["index"])
  return dict(grouped)


def per_example(records: Sequence[Mapping], lang: str, metric: str,
                spm_path: str,
                identifier: Optional[langid.LanguageIdentifier] = None
                ) -> np.ndarray:
  """Each example's `metric` (0-100), whose mean is the run's score."""
  targets = [r["target"] for r in records]
  predictions = [r["prediction"] for r in records]
  if metric == "rouge2":
    return metrics.rouge_spm_per_example(targets, predictions, spm_path,
                                         ("rouge2",))["rouge2"]
  if metric == "exact_match":  # as lta.synthetic.scoring counts it
    return 100.0 * np.array([p.strip() == t.strip()
                             for t, p in zip(targets, predictions)], float)
  if metric in ("f1", "em"):  # SQuAD, as the QA tasks score (one answer)
    return metrics.squad_per_example(targets, predictions)[metric]
  if metric == "language_fidelity":
    return 100.0 * langid.language_matches(predictions, lang,
                                           identifier).astype(float)
  raise errors.ConfigError(
      f"no per-example scores for metric {metric!r}; choose from "
      f"{list(METRICS)}" + errors.did_you_mean(metric, METRICS))


def checked_per_example(records: Sequence[Mapping], lang: str, metric: str,
                        spm_path: str,
                        identifier: Optional[langid.LanguageIdentifier],
                        reported: float, where: str) -> np.ndarray:
  """per_example(), refused unless its mean is the `reported` score."""
  values = per_example(records, lang, metric, spm_path, identifier)
  if abs(values.mean() - reported) > TOLERANCE * max(1.0, abs(reported)):
    raise errors.DataError(
        f"{where} on {lang!r}: per-example {metric} averages "
        f"{values.mean():.6f}, but the run reported {reported:.6f}")
  return values


def paired_scores(predictions_path: str, scores: Mapping[str, Mapping],
                  methods: Sequence[str], targets: Sequence[str],
                  metric: str, spm_path: str,
                  identifier: Optional[langid.LanguageIdentifier] = None
                  ) -> dict[str, np.ndarray]:
  """method -> [targets, examples] scores, checked against `scores`.

  Args:
    predictions_path: a run's predictions.jsonl.
    scores: that run's scores.json ({method: {language: {metric: mean}}}).
    methods, targets: the rows and columns wanted.
    metric: one of METRICS.
    spm_path: the SentencePiece model of ROUGE (the run's vocabulary).
    identifier: the language identifier of the run's fidelity scores.
  """
  grouped = read_predictions(predictions_path)
  out = {}
  for method in methods:
    rows = []
    for target in targets:
      records = grouped.get((method, target))
      if not records:
        raise errors.DataError(
            f"{predictions_path}: no test predictions of {method!r} on "
            f"{target!r}")
      rows.append(checked_per_example(
          records, target, metric, spm_path, identifier,
          scores[method][target][metric], f"{predictions_path}: {method!r}"))
    if len({len(r) for r in rows}) != 1:
      raise errors.DataError(
          f"{predictions_path}: {method!r} has "
          f"{[len(r) for r in rows]} test examples over {list(targets)}; "
          f"paired statistics need as many for every target")
    out[method] = np.stack(rows)
  return out
