"""`lta report`: the paper's tables from `lta eval` / `lta pipeline` outputs.

Reads the results records (`lta.eval.results`) of one or more output
directories and writes, to one output directory:
  report.md    every table in Markdown, with the inputs listed;
  report.tex   the same tables in LaTeX (booktabs);
  *.csv        one file per table, full precision;
  figure2_<composition>.png  the paper's Figure 2 (relative improvement
               per source and target) when single-source compositions and
               their baselines are present.
Layouts: per task family and split, a row per method and a column per
target language plus the average (Tables 1-3), the λ chosen per target,
fidelity and exact match when present; with several task families, their
averages side by side (Table 4).

Several single-language task vectors evaluated as is become one row,
`baseline_best` (lta.eval.methods): per target the best of them on the
reported split, as in the paper's Tables 2 and 3. The same result found in
two directories (the baseline that each composition run re-scores) is kept
once; two different values for the same method, task and split are an
error.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Callable, Sequence

from lta import errors
from lta.eval import methods
from lta.eval import report as reporting
from lta.data import task_names
from lta.eval import results
from lta.eval.results import ResultRecord


def collect(dirs: Sequence[str]) -> list[ResultRecord]:
  """Every record of `dirs`, duplicates kept once; conflicts are errors."""
  if not dirs:
    raise errors.ConfigError("lta report: give at least one results "
                             "directory")
  kept: dict[tuple, tuple[ResultRecord, str]] = {}
  for d in dirs:
    for r in results.read_records(d):
      key = (r.method, r.sources, r.task, r.split)
      if key not in kept:
        kept[key] = (r, d)
        continue
      other, where = kept[key]
      if not _same_score(other.main_score, r.main_score):
        raise errors.DataError(
            f"Conflicting results for {r.label} on {r.task} ({r.split}): "
            f"{r.metric} {other.main_score:.4f} in {where}, "
            f"{r.main_score:.4f} in {d}; report them separately")
  return [r for r, _ in kept.values()]


def _same_score(a: float, b: float) -> bool:
  return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6


def best_task_vector(records: Sequence[ResultRecord]) -> list[ResultRecord]:
  """Replaces task vectors of several sources by `baseline_best`: per
  task and split the one with the best main score (the paper's Tables 2
  and 3). Unchanged when no task has task vectors of two sources."""
  groups: dict[tuple[str, str], list[ResultRecord]] = {}
  for r in records:
    if r.method == "task_vector":
      groups.setdefault((r.task, r.split), []).append(r)
  if all(len(g) < 2 for g in groups.values()):
    return list(records)
  out = [r for r in records if r.method != "task_vector"]
  for (task, split), group in groups.items():
    best = max(group, key=lambda r: (
        r.main_score if results.is_number(r.main_score) else -math.inf,
        r.sources))
    out.append(ResultRecord(
        "baseline_best", task, best.language, split, best.scores,
        best.num_examples, sources=best.sources, adapter=best.adapter,
        base_checkpoint=best.base_checkpoint))
  return out


def row_labeller(records: Sequence[ResultRecord]
                 ) -> Callable[[ResultRecord], str]:
  """Row names; a single-source method seen with several sources gets one
  row per source (e.g. Figure 2's inputs)."""
  seen: dict[str, set] = {}
  for r in records:
    seen.setdefault(r.method, set()).add(r.sources)

  def row_of(r: ResultRecord) -> str:
    if methods.get(r.method).single_source and len(seen[r.method]) > 1 \
        and r.method != "task_vector":
      return f"{r.label}, task in {'+'.join(s.capitalize() for s in r.sources)}"
    return r.label

  return row_of


def run_report(dirs: Sequence[str], output_dir: str,
               keep_task_vectors: bool = False) -> dict[str, str]:
  """Writes the report files; returns their paths by name."""
  records = collect(dirs)
  if not keep_task_vectors:
    records = best_task_vector(records)
  row_of = row_labeller(records)
  tables = []
  for family, split in dict.fromkeys((r.family, r.split) for r in records):
    group = [r for r in records if (r.family, r.split) == (family, split)]
    best = {task_names.language(r.task): r.sources[0] for r in group
            if r.method == "baseline_best"}
    caption = (f"{methods.label('baseline_best')}: the best single task "
               "vector per target on "
               f"{split} (" + ", ".join(f"{t}: {s}" for t, s in best.items())
               + ")." if best else "")
    tables += reporting.result_tables(group, caption, row_of=row_of)
  if len({r.family for r in records}) > 1:
    tables.append(reporting.family_table(records, row_of))
  os.makedirs(output_dir, exist_ok=True)
  paths = {}
  for table in tables:
    name = f"{table.name}.csv"
    paths[name] = os.path.join(output_dir, name)
    with open(paths[name], "w", newline="", encoding="utf-8") as f:
      csv.writer(f).writerows(table.csv_rows())
  figures = []
  for name in dict.fromkeys(r.method for r in records):
    if methods.get(name).single_source and name not in ("task_only",
                                                        "task_vector"):
      path = reporting.plot_relative_improvement(
          records, name, os.path.join(output_dir, f"figure2_{name}.png"))
      if path:
        paths[os.path.basename(path)] = path
        figures.append(path)
  paths["report.md"] = os.path.join(output_dir, "report.md")
  with open(paths["report.md"], "w", encoding="utf-8") as f:
    f.write("# Results\n\nFrom " + ", ".join(f"`{d}`" for d in dirs)
            + ".\n\n" + "\n".join(t.markdown() for t in tables))
    for path in figures:
      f.write(f"\n![{os.path.basename(path)}]({os.path.basename(path)})\n")
  paths["report.tex"] = os.path.join(output_dir, "report.tex")
  with open(paths["report.tex"], "w", encoding="utf-8") as f:
    f.write("% lta report; needs \\usepackage{booktabs}\n"
            + "\n".join(t.latex() for t in tables))
  return paths
