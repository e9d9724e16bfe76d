"""What people read: result files, paper-style tables and plots.

Tables are built from `lta.eval.results.ResultRecord`s and rendered as Markdown,
CSV or LaTeX (booktabs). Row names come from `lta.eval.methods`. An average
column is filled only for a row that has every column: an average over
fewer languages would not compare with the other rows.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import textwrap
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from lta import errors
from lta.eval import methods
from lta.eval import results as results_lib
from lta.eval.results import ResultRecord, is_number, metric_label

# A value, None where there is none, or a note saying why ("n/a: ...").
Cell = Optional[Union[float, str]]
METHOD_ORDER = {name: i for i, name in enumerate(methods.METHODS)}
# Scores tabulated after the main metric when any record has them.
SECONDARY_METRICS = ("language_fidelity", "exact_match")


def _number(value: Cell, digits: int = 1) -> str:
  if isinstance(value, str):
    return value.split(":", 1)[0]  # "n/a"; the note goes under the table
  return f"{value:.{digits}f}" if is_number(value) else "–"


def _lambda(value: Cell) -> str:
  return f"{value:g}" if is_number(value) else "–"


@dataclasses.dataclass
class Table:
  """Rows of values under column heads; `fmt` renders one value.

  `name` is a file-name stem that tells the tables of one report apart.
  """
  title: str
  columns: list[str]
  rows: dict[str, list[Cell]]
  caption: str = ""
  name: str = "table"
  corner: str = "Method"
  fmt: Callable[[Cell], str] = _number

  @property
  def notes(self) -> list[str]:
    return sorted({v for values in self.rows.values() for v in values
                   if isinstance(v, str)})

  def markdown(self) -> str:
    head = [self.corner] + self.columns
    lines = [f"### {self.title}", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(self.columns)) + "|"]
    for label, values in self.rows.items():
      lines.append("| " + " | ".join([label] + [self.fmt(v) for v in values])
                   + " |")
    if self.notes:
      lines += [""] + self.notes
    if self.caption:
      lines += ["", self.caption]
    return "\n".join(lines) + "\n"

  def csv_rows(self) -> list[list[str]]:
    """Full precision; an empty cell where there is no value."""
    out = [[self.corner] + self.columns]
    for label, values in self.rows.items():
      out.append([label] + [v if isinstance(v, str) else
                            repr(v) if is_number(v) else "" for v in values])
    return out

  def latex(self) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    spec = "l" + "r" * len(self.columns)
    lines = [r"\begin{table}[t]", r"\centering",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_tex(c) for c in [self.corner] + self.columns)
             + r" \\", r"\midrule"]
    for label, values in self.rows.items():
      cells = [_tex(label)] + [_tex(self.fmt(v)) for v in values]
      lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = " ".join([f"{self.title}.", *self.notes, self.caption]).strip()
    lines += [rf"\caption{{{_tex(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$",
        "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "λ": r"$\lambda$", "θ": r"$\theta$", "−": "$-$", "–": "--",
        "Σ": r"$\Sigma$", "·": r"$\cdot$"}


def _tex(text: str) -> str:
  return "".join(_TEX.get(ch, ch) for ch in text)


def _ordered_rows(records: Sequence[ResultRecord],
                  row_of: Callable[[ResultRecord], str]) -> list[str]:
  """Row labels in the registry's order (baselines first), then as seen."""
  first: dict[str, tuple[int, int]] = {}
  for i, r in enumerate(records):
    first.setdefault(row_of(r), (METHOD_ORDER[r.method], i))
  return sorted(first, key=first.get)


def _columns(records: Sequence[ResultRecord]) -> list[str]:
  return list(dict.fromkeys(r.language for r in records))


def _by_row_and_language(records, row_of):
  cells: dict[tuple[str, str], ResultRecord] = {}
  for r in records:
    key = (row_of(r), r.language)
    if key in cells:
      raise errors.DataError(f"Two results for {key[0]!r} on {key[1]!r} "
                       f"({cells[key].task} and {r.task}); tabulate one "
                       "task family at a time")
    cells[key] = r
  return cells


def language_table(records: Sequence[ResultRecord],
                   value: Callable[[ResultRecord], Cell], title: str,
                   caption: str = "", average: bool = True,
                   row_of: Callable[[ResultRecord], str] = lambda r: r.label,
                   fmt: Callable[[Cell], str] = _number,
                   name: str = "table") -> Table:
  """The layout of the paper's Tables 1-3: a row per method, a column per
  target language, and the average over languages."""
  languages = _columns(records)
  cells = _by_row_and_language(records, row_of)
  rows: dict[str, list[Cell]] = {}
  for label in _ordered_rows(records, row_of):
    values = [value(cells[(label, lang)]) if (label, lang) in cells else None
              for lang in languages]
    if average:
      values.append(sum(values) / len(values) if all(map(is_number, values))
                    else None)
    rows[label] = values
  columns = [lang.capitalize() for lang in languages]
  return Table(title, columns + (["Avg"] if average else []), rows, caption,
               name=name, fmt=fmt)


def metric_table(records: Sequence[ResultRecord], metric: Optional[str] = None,
                 caption: str = "", **kwargs) -> Table:
  """`metric` (default: the task's main metric) per method and language."""
  metric = metric or records[0].metric
  family = results_lib.FAMILY_LABELS.get(records[0].family, records[0].family)
  splits = "/".join(dict.fromkeys(r.split for r in records))
  return language_table(records,
                        lambda r: r.notes.get(metric) or r.scores.get(metric),
                        f"{family} ({splits}): {metric_label(metric)}",
                        caption, name=f"{_stem(records)}_{metric}", **kwargs)


def _stem(records: Sequence[ResultRecord]) -> str:
  return "_".join(dict.fromkeys(f"{r.family}_{r.split}" for r in records))


def lambda_table(records: Sequence[ResultRecord], **kwargs) -> Optional[Table]:
  """The λ chosen per target, for the methods that have one."""
  with_lambda = [r for r in records if r.lam is not None]
  if not with_lambda:
    return None
  first = with_lambda[0]
  title = (f"λ chosen per target on {first.selection_split} "
           f"{metric_label(first.selection_metric)}")
  return language_table(with_lambda, lambda r: r.lam, title, average=False,
                        fmt=_lambda, name=f"{_stem(records)}_lambda",
                        **kwargs)


def family_table(records: Sequence[ResultRecord],
                 row_of: Callable[[ResultRecord], str] = lambda r: r.label,
                 caption: str = "") -> Table:
  """The layout of the paper's Table 4: a column per task family, each the
  average of its main metric over that family's languages."""
  families = list(dict.fromkeys(r.family for r in records))
  rows: dict[str, list[Cell]] = {}
  for label in _ordered_rows(records, row_of):
    values = []
    for family in families:
      of_family = [r for r in records if r.family == family]
      languages = set(_columns(of_family))
      mine = {r.language: r.main_score for r in of_family
              if row_of(r) == label}
      complete = set(mine) == languages and all(map(is_number, mine.values()))
      values.append(sum(mine.values()) / len(mine) if complete else None)
    rows[label] = values
  columns = [f"{results_lib.FAMILY_LABELS.get(f, f)} "
             f"({metric_label(results_lib.MAIN_METRIC.get(f, '?'))})"
             for f in families]
  return Table("Average over the target languages", columns, rows, caption,
               name="average_per_task")


def result_tables(records: Sequence[ResultRecord], caption: str = "",
                  **kwargs) -> list[Table]:
  """Per task family and split: the main metric (with `caption`), the
  chosen λ, then the secondary metrics that any record has."""
  tables = []
  for family, split in dict.fromkeys((r.family, r.split) for r in records):
    mine = [r for r in records if (r.family, r.split) == (family, split)]
    tables.append(metric_table(mine, caption=caption, **kwargs))
    lam = lambda_table(mine, **kwargs)
    if lam is not None:
      tables.append(lam)
    for metric in SECONDARY_METRICS:
      if any(is_number(r.scores.get(metric)) or metric in r.notes
             for r in mine):
        tables.append(metric_table(mine, metric, **kwargs))
  return tables


# --- the files of one evaluation ---------------------------------------------

def write_results(out_dir: str, records: Sequence[ResultRecord],
                  examples: Optional[Sequence[Sequence[Mapping[str, Any]]]]
                  = None, caption: str = "",
                  row_of: Callable[[ResultRecord], str] = lambda r: r.label
                  ) -> dict[str, str]:
  """results.json (the records), predictions.jsonl (`examples[i]` are
  record i's decoded examples), scores.csv, scores.json and table.md (its
  rows named by `row_of`)."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {name: os.path.join(out_dir, name) for name in
           ("predictions.jsonl", "scores.csv", "scores.json", "table.md")}
  paths[results_lib.RESULTS_FILE] = results_lib.write_records(out_dir, records)
  with open(paths["predictions.jsonl"], "w", encoding="utf-8") as f:
    for record, exs in zip(records, examples or [[]] * len(records)):
      for ex in exs:
        f.write(json.dumps({"method": record.label, "split": record.split,
                            **ex}, ensure_ascii=False) + "\n")
  with open(paths["scores.csv"], "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["method", "task", "language", "split", "metric",
                     "value"])
    for r in records:
      for metric, value in sorted(r.scores.items()):
        writer.writerow([r.label, r.task, r.language, r.split, metric,
                         f"{value:.6f}"])
      for metric, note in sorted(r.notes.items()):
        writer.writerow([r.label, r.task, r.language, r.split, metric, note])
  # {label: {language: scores}}, what `lta sweep` collects; λ as "lambda",
  # a note where a score has no value.
  nested: dict[str, dict[str, dict[str, Union[float, str]]]] = {}
  for r in records:
    extra = {} if r.lam is None else {"lambda": r.lam}
    nested.setdefault(r.label, {})[r.language] = {**r.scores, **r.notes,
                                                  **extra}
  with open(paths["scores.json"], "w", encoding="utf-8") as f:
    json.dump(nested, f, indent=2, sort_keys=True, ensure_ascii=False)
  with open(paths["table.md"], "w", encoding="utf-8") as f:
    f.write("\n".join(t.markdown() for t in result_tables(
        records, caption, row_of=row_of)))
  return paths


# --- plots -------------------------------------------------------------------

def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save_figure(fig, path: str) -> str:
  fig.savefig(path, dpi=150)
  _pyplot().close(fig)
  return path


def plot_lambda_sweep(records: Sequence[ResultRecord], path: str,
                      baselines: Sequence[ResultRecord] = ()) -> str:
  """Writes `lambda_sweep_figure` to `path`."""
  return save_figure(lambda_sweep_figure(records, baselines), path)


def lambda_sweep_figure(records: Sequence[ResultRecord],
                        baselines: Sequence[ResultRecord] = ()):
  """Selection score against λ, one panel per target language.

  records: one λ method's results (their `selection_scores` are the sweep,
  `lam` the chosen λ). baselines: the baseline's results, drawn as a
  horizontal line at their selection score.
  """
  plt = _pyplot()
  records = [r for r in records if r.selection_scores]
  if not records:
    raise ValueError("lambda_sweep_figure: no record has a λ sweep")
  base = {r.language: r for r in baselines if r.selection_scores}
  ncols = min(len(records), 4)
  nrows = math.ceil(len(records) / ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols,
                                                  3.0 * nrows + 0.9),
                           squeeze=False)
  first = records[0]
  ylabel = f"{first.selection_split} {metric_label(first.selection_metric)}"
  for ax, r in zip(axes.flat, records):
    lams = sorted(r.selection_scores)
    ax.plot(lams, [r.selection_scores[x] for x in lams], marker="o",
            color="tab:blue", label=methods.short_label(r.method, r.sources))
    if r.language in base:
      b = base[r.language]
      ax.axhline(next(iter(b.selection_scores.values())), color="tab:gray",
                 linestyle="--", label=b.label)
    if r.lam is not None and r.lam in r.selection_scores:
      ax.plot([r.lam], [r.selection_scores[r.lam]], marker="*",
              markersize=16, color="tab:red", linestyle="none",
              label="chosen λ")
      ax.annotate(f"λ={r.lam:g}", (r.lam, r.selection_scores[r.lam]),
                  textcoords="offset points", xytext=(0, 9), ha="center",
                  fontsize=8, color="tab:red")
    ax.set_title(f"{r.language.capitalize()} ({r.task})", fontsize=10)
    ax.set_xlabel("λ (weight of the task vector)")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(alpha=0.3)
    ax.margins(x=0.08, y=0.25)
    low, high = min(r.selection_scores.values()), max(
        r.selection_scores.values())
    if high - low < 1e-6:  # flat (e.g. all zero): a readable unit range
      ax.set_ylim(low - 1.0, high + 1.0)
  for ax in list(axes.flat)[len(records):]:
    ax.set_visible(False)
  handles, labels = axes.flat[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=len(labels),
             fontsize=9, frameon=False)
  fig.suptitle(f"{first.label}: λ chosen per target on "
               f"{first.selection_split}", fontsize=11)
  fig.tight_layout(rect=(0, 0.07 if nrows == 1 else 0.04, 1, 1))
  return fig


def relative_improvement(records: Sequence[ResultRecord], method: str,
                         baseline: str = "task_only"
                         ) -> dict[str, dict[str, float]]:
  """source -> target -> 100·(method − baseline)/baseline, main metric.

  Pairs each single-source result of `method` with the baseline built from
  the same source, task and split (the paper's Figure 2).
  """
  base = {(r.sources, r.task, r.split): r for r in records
          if r.method == baseline}
  out: dict[str, dict[str, float]] = {}
  for r in records:
    if r.method != method or len(r.sources) != 1:
      continue
    b = base.get((r.sources, r.task, r.split))
    if b is None:
      continue
    out.setdefault(r.sources[0], {})[r.language] = (
        100.0 * (r.main_score - b.main_score) / b.main_score
        if b.main_score else float("nan"))
  return out


def heatmap_figure(matrix: Mapping[str, Mapping[str, float]], title: str,
                   xlabel: str, ylabel: str, value_label: str,
                   na_note: str = ""):
  """Rows × columns of signed values, every cell annotated, 0 in the
  middle of the colour scale; `na_note` explains cells without a value."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from matplotlib import colors  # pylint: disable=g-import-not-at-top
  plt = _pyplot()
  rows = list(matrix)
  cols = list(dict.fromkeys(c for row in matrix.values() for c in row))
  values = np.array([[matrix[r].get(c, float("nan")) for c in cols]
                     for r in rows], dtype=float)
  finite = values[np.isfinite(values)]
  limit = float(np.abs(finite).max()) if finite.size else 0.0
  norm = colors.Normalize(vmin=-(limit or 1.0), vmax=limit or 1.0)
  width = max(6.5, 2.8 + 0.8 * len(cols))
  fig, ax = plt.subplots(figsize=(width, max(3.2, 1.9 + 0.6 * len(rows))))
  cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#dddddd")
  image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm,
                    aspect="auto")
  ax.set_xticks(range(len(cols)), [c.capitalize() for c in cols])
  ax.set_yticks(range(len(rows)), [r.capitalize() for r in rows])
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  for i in range(len(rows)):
    for j in range(len(cols)):
      v = values[i, j]
      text = "n/a" if not np.isfinite(v) else f"{v:+.1f}"
      dark = np.isfinite(v) and abs(norm(v) - 0.5) > 0.35
      ax.text(j, i, text, ha="center", va="center", fontsize=9,
              color="white" if dark else "black")
  fig.colorbar(image, ax=ax, label=value_label)
  ax.set_title("\n".join(textwrap.wrap(title, int(width * 11))), fontsize=10)
  footnote = (na_note if na_note and not np.isfinite(values).all() else "")
  if footnote:
    fig.text(0.01, 0.01, footnote, fontsize=8, color="dimgray")
  fig.tight_layout(rect=(0, 0.05 if footnote else 0, 1, 1))
  return fig


def plot_relative_improvement(records: Sequence[ResultRecord], method: str,
                              path: str) -> Optional[str]:
  """The paper's Figure 2 for `method`; None when no pair exists."""
  matrix = relative_improvement(records, method)
  if not matrix:
    return None
  metric = metric_label(next(r.metric for r in records if r.method == method))
  return save_figure(heatmap_figure(
      matrix,
      title=(f"Relative {metric} improvement of {methods.label(method)} over "
             f"the {methods.label('task_only').lower()}, per source and "
             "target language (%)"),
      xlabel="target language (zero-shot)",
      ylabel="source language of the task vector",
      value_label="relative improvement (%)",
      na_note="n/a: the baseline scored 0, or no baseline for this pair"),
                     path)
