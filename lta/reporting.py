"""Result files: per-example JSONL, per-language CSV/JSON, paper-style tables, plots."""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Mapping, Sequence

from lta.evaluation import TaskResult, main_metric

# method -> language -> value, or a note ("n/a: ...") where there is none.
Scores = Mapping[str, Mapping[str, float | str]]


def _fmt(value: float | str) -> str:
  if isinstance(value, str):
    return value.split(":", 1)[0]  # the note itself goes under the table
  return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def _is_number(value: float | str) -> bool:
  return not isinstance(value, str) and not math.isnan(value)


def markdown_table(rows: Scores, languages: Sequence[str],
                   caption: str = "") -> str:
  """One row per method, one column per language, plus the average."""
  header = ["Method"] + [lang.capitalize() for lang in languages] + ["Avg"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  for method, by_lang in rows.items():
    values = [by_lang.get(lang, float("nan")) for lang in languages]
    present = [v for v in values if _is_number(v)]
    avg = sum(present) / len(present) if present else float("nan")
    lines.append("| " + " | ".join([method] + [_fmt(v) for v in values] +
                                   [_fmt(avg)]) + " |")
  notes = sorted({v for row in rows.values() for v in row.values()
                  if isinstance(v, str)})
  table = "\n".join(lines + ([""] + notes if notes else []))
  return f"{table}\n\n{caption}\n" if caption else table + "\n"


def metric_rows(results: Mapping[str, Sequence[TaskResult]],
                metric: str | None = None
                ) -> dict[str, dict[str, float | str]]:
  """method -> language -> value of `metric` (default: each task's main),
  or the note saying why there is none."""
  return {method: {r.language: r.notes.get(metric) or r.scores.get(
      metric or main_metric(r.task), float("nan")) for r in task_results}
          for method, task_results in results.items()}


def write_results(out_dir: str, results: Mapping[str, Sequence[TaskResult]],
                  caption: str = "") -> dict[str, str]:
  """Writes predictions.jsonl, scores.csv, scores.json and table.md."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {name: os.path.join(out_dir, name) for name in
           ("predictions.jsonl", "scores.csv", "scores.json", "table.md")}
  with open(paths["predictions.jsonl"], "w", encoding="utf-8") as f:
    for method, task_results in results.items():
      for r in task_results:
        for ex in r.examples:
          f.write(json.dumps({"method": method, **ex}, ensure_ascii=False)
                  + "\n")
  with open(paths["scores.csv"], "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["method", "task", "language", "metric", "value"])
    for method, task_results in results.items():
      for r in task_results:
        for metric, value in sorted(r.scores.items()):
          writer.writerow([method, r.task, r.language, metric,
                           f"{value:.6f}"])
        for metric, note in sorted(r.notes.items()):
          writer.writerow([method, r.task, r.language, metric, note])
  nested = {method: {r.language: {**r.scores, **r.notes}
                     for r in task_results}
            for method, task_results in results.items()}
  with open(paths["scores.json"], "w", encoding="utf-8") as f:
    json.dump(nested, f, indent=2, sort_keys=True)
  languages = list(dict.fromkeys(r.language for rs in results.values()
                                 for r in rs))
  metric = main_metric(next(iter(results.values()))[0].task)
  text = [f"### {metric}\n", markdown_table(metric_rows(results), languages,
                                            caption)]
  fidelity = metric_rows(results, "language_fidelity")
  if any(isinstance(v, str) or not math.isnan(v)
         for row in fidelity.values() for v in row.values()):
    text += ["\n### language fidelity (% of outputs in the target language)\n",
             markdown_table(fidelity, languages)]
  with open(paths["table.md"], "w", encoding="utf-8") as f:
    f.write("\n".join(text))
  return paths


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_lambda_sweep(scores: Mapping[str, Mapping[float, float]], path: str,
                      metric: str = "score") -> str:
  """Score against λ, one line per language."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for lang, by_lambda in sorted(scores.items()):
    lams = sorted(by_lambda)
    ax.plot(lams, [by_lambda[x] for x in lams], marker="o", label=lang)
  ax.set_xlabel("λ")
  ax.set_ylabel(metric)
  ax.legend(fontsize="small", ncol=2)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def relative_improvement(method: Mapping[str, Mapping[str, float]],
                         baseline: Mapping[str, Mapping[str, float]]
                         ) -> dict[str, dict[str, float]]:
  """source -> target -> 100 * (method - baseline) / baseline."""
  out: dict[str, dict[str, float]] = {}
  for source, by_target in method.items():
    for target, value in by_target.items():
      base = baseline[source][target]
      out.setdefault(source, {})[target] = (
          100.0 * (value - base) / base if base else float("nan"))
  return out


def plot_heatmap(matrix: Mapping[str, Mapping[str, float]], path: str,
                 title: str = "relative improvement over baseline (%)") -> str:
  """Rows are sources, columns targets (the paper's Figure 2 layout)."""
  plt = _pyplot()
  sources = list(matrix)
  targets = list(dict.fromkeys(t for row in matrix.values() for t in row))
  values = [[matrix[s].get(t, float("nan")) for t in targets] for s in sources]
  fig, ax = plt.subplots(figsize=(1 + 0.6 * len(targets),
                                  1 + 0.5 * len(sources)))
  image = ax.imshow(values, cmap="RdYlGn", aspect="auto")
  ax.set_xticks(range(len(targets)), targets)
  ax.set_yticks(range(len(sources)), sources)
  ax.set_xlabel("target")
  ax.set_ylabel("source")
  for i, row in enumerate(values):
    for j, v in enumerate(row):
      if not math.isnan(v):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
  fig.colorbar(image, ax=ax)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
