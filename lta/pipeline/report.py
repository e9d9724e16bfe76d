"""What the main job (lta.pipeline.run) writes at the end, and its sanity flag.

results/ holds results.json, predictions.jsonl, scores.csv and scores.json
(lta.eval.report; `lta report` reads results.json), table.md (the
per-language tables; the rows that use a task vector which failed its
sanity check are marked, with a footnote), lambda_sweep.png and
lambda_sweep.json (add and subtract), lambda_sweeps.json (every method) and
sanity.json.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence

from lta.eval import methods
from lta.eval import report as reporting
from lta.eval import results as results_lib
from lta.eval.results import ResultRecord

RESULT_FILES = (results_lib.RESULTS_FILE, "predictions.jsonl", "scores.csv",
                "scores.json", "table.md", "lambda_sweep.png",
                "lambda_sweep.json", "lambda_sweeps.json", "sanity.json")
FAILED_MARK = "†"
ADD_SUBTRACT = "lang_task_add_subtract"  # the method the λ plot shows


def sanity_flags(source_rouge2: Mapping[str, float], min_rouge2: float,
                 rows: Mapping[str, str], source: str,
                 related: Mapping[str, Sequence[str]]) -> dict[str, Any]:
  """The task vectors below `min_rouge2` on their own language, and the rows.

  Args:
    source_rouge2: language -> its task vector's ROUGE-2 on its own test set.
    min_rouge2: the sanity threshold.
    rows: table row label -> composition name (lta.eval.methods).
    source: the language of the task vector in the non-related rows.
    related: target -> the sources the related rows average.

  Returns:
    {"min_rouge2", "failed": language -> ROUGE-2, "flagged_rows": the rows
    whose compositions use a failed task vector}.
  """
  failed = {lang: v for lang, v in source_rouge2.items() if v < min_rouge2}
  related_used = {s for sources in related.values() for s in sources}
  flagged = [label for label, method in rows.items()
             if set(failed) & (related_used if method.endswith("_related")
                               else {source})]
  return {"min_rouge2": min_rouge2, "failed": failed, "flagged_rows": flagged}


def sanity_failure(sanity: Mapping[str, Any]) -> Optional[str]:
  """One line on the task vectors that failed the sanity check, if any."""
  failed = sanity.get("failed")
  if not failed:
    return None
  scores = ", ".join(f"{lang} {v:.1f}" for lang, v in failed.items())
  return (f"Sanity check failed: the task vector scores ROUGE-2 {scores} on "
          f"its own language's test set (below {sanity['min_rouge2']}): it "
          f"has not learned the task, so the rows marked {FAILED_MARK} "
          f"compare nothing. Check its training (PipelineConfig."
          f"pretrain_steps, pretrain_objectives, task_steps, "
          f"adapter_learning_rate) and docs/miniature.md.")


def sanity_caption(sanity: Mapping[str, Any]) -> str:
  """Each task vector's own-language score, and the failure footnote."""
  text = "Sanity: each task vector on its own language's test set, " \
      "ROUGE-2 " + ", ".join(
          f"{lang} {s['rouge2']:.1f}"
          for lang, s in sanity["task_vector_on_source"].items()) + "."
  failure = sanity_failure(sanity)
  return text + (f"\n\n{FAILED_MARK} {failure}" if failure else "")


def _write_json(path: str, value: Any) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2)


def marked_label(record: ResultRecord, flagged_rows: Sequence[str]) -> str:
  """A table row's label, with FAILED_MARK when its check failed."""
  label = record.label
  return f"{label} {FAILED_MARK}" if label in flagged_rows else label


def write_report(out_dir: str,
                 scored: Sequence[tuple[ResultRecord, Sequence[Any]]],
                 sanity: Mapping[str, Any], caption: str,
                 selection_metric: str) -> dict[str, str]:
  """Writes RESULT_FILES from (record, decoded test examples) pairs."""
  records = [r for r, _ in scored]
  flagged = list(sanity["flagged_rows"])
  reporting.write_results(
      out_dir, records, [examples for _, examples in scored], caption,
      row_of=lambda r: marked_label(r, flagged))
  reporting.plot_lambda_sweep(
      [r for r in records if r.method == ADD_SUBTRACT],
      os.path.join(out_dir, "lambda_sweep.png"),
      baselines=[r for r in records if r.method == "task_only"])
  sweeps: dict[str, dict[str, dict[str, float]]] = {}
  for r in records:
    sweeps.setdefault(r.label, {})[r.language] = {
        str(k): v for k, v in r.selection_scores.items()}
  _write_json(os.path.join(out_dir, "lambda_sweep.json"),
              sweeps[methods.label(ADD_SUBTRACT)])
  _write_json(os.path.join(out_dir, "lambda_sweeps.json"), {
      "metric": selection_metric, "split": "validation", "sweeps": sweeps})
  _write_json(os.path.join(out_dir, "sanity.json"), sanity)
  return {name: os.path.join(out_dir, name) for name in RESULT_FILES}
