"""What a result is: one method's scores on one task, and its file.

`lta eval` and the pipeline write a list of `ResultRecord`s to
`results.json` in their output directory; `lta report` reads them back.
This module is the only one that writes or reads that file, and it stays
light (no JAX, TF or seqio) so reading results is fast.

results.json: {"format_version": 1, "records": [record, ...]} with each
record's fields as below; λ keys of `selection_scores` are strings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping, Optional, Sequence

from lta import errors
from lta.data import task_names
from lta.eval import methods

FORMAT_VERSION = 1
RESULTS_FILE = "results.json"

# The score each task family reports in the paper's tables.
MAIN_METRIC = {"xlsum": "rouge2", "tydiqa_goldp": "f1", "xquad": "f1",
               "synthetic_qa": "f1"}
# How tables and plots name a metric (scores are in 0-100).
METRIC_LABELS = {
    "rouge1": "ROUGE-1 (spm)", "rouge2": "ROUGE-2 (spm)",
    "rougeLsum": "ROUGE-L (spm)", "f1": "F1", "exact_match": "exact match (%)",
    "language_fidelity": "language fidelity (% of outputs in the target "
                         "language)",
}
# Display names of task families, as the paper's Table 4 heads them.
FAMILY_LABELS = {"xlsum": "XLSum", "tydiqa_goldp": "TyDi QA", "xquad": "XQuAD",
                 "synthetic_qa": "QA (synthetic)"}


def main_metric(task_name: str) -> str:
  family = task_names.family(task_name)
  for prefix, metric in MAIN_METRIC.items():
    if family.startswith(prefix):
      return metric
  raise errors.ConfigError(
      f"No main metric known for task {task_name!r}; expected a family among "
      f"{sorted(MAIN_METRIC)}.")


def metric_label(metric: str) -> str:
  return METRIC_LABELS.get(metric, metric)


@dataclasses.dataclass(frozen=True)
class ResultRecord:
  """One method's scores on one task (one target language) and split.

  method: a key of `lta.eval.methods.METHODS` (a composition name, 'task_vector',
    'baseline_multilingual', 'base', ...).
  scores: metric -> value in 0-100 (the task's metrics, '<main>_ci_low' and
    '<main>_ci_high' bootstrap bounds, 'language_fidelity', ...).
  notes: metric -> why it has no value ("n/a: the identifier ... has no
    'ha'"); shown wherever the value would be.
  sources: the task vectors' languages the method was built from.
  lam: the λ chosen on `selection_split` by `selection_metric`; None for
    methods without λ.
  selection_scores: λ -> score on `selection_split` (the sweep; for methods
    without λ the one score at 1.0), for plots.
  adapter: the adapter directory evaluated as is, when there was one.
  """
  method: str
  task: str
  language: str
  split: str
  scores: dict[str, float]
  num_examples: int
  sources: tuple[str, ...] = ()
  lam: Optional[float] = None
  selection_split: str = ""
  selection_metric: str = ""
  selection_scores: dict[float, float] = dataclasses.field(
      default_factory=dict)
  adapter: str = ""
  base_checkpoint: str = ""
  notes: dict[str, str] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    methods.get(self.method)  # an unknown method is an error
    object.__setattr__(self, "sources", tuple(self.sources))
    object.__setattr__(self, "scores",
                       {k: float(v) for k, v in self.scores.items()})
    object.__setattr__(self, "selection_scores", {
        float(k): float(v) for k, v in self.selection_scores.items()})

  @property
  def label(self) -> str:
    """The row name in tables (the paper's, from `lta.eval.methods`)."""
    return methods.label(self.method, self.sources)

  @property
  def family(self) -> str:
    return task_names.family(self.task)

  @property
  def metric(self) -> str:
    return main_metric(self.task)

  @property
  def main_score(self) -> float:
    return self.scores.get(self.metric, float("nan"))

  @classmethod
  def from_scored(cls, method: str, result: Any, **fields: Any
                  ) -> "ResultRecord":
    """From an `lta.eval.scoring.TaskResult`; the λ that λ selection stored
    in its scores becomes `lam` (for methods that have a λ)."""
    scores = dict(result.scores)
    lam = scores.pop("lambda", None)
    if not methods.get(method).uses_lambda:
      lam = None
    return cls(method=method, task=result.task, language=result.language,
               scores=scores, num_examples=len(result.examples), lam=lam,
               notes=dict(getattr(result, "notes", {})), **fields)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["sources"] = list(self.sources)
    d["selection_scores"] = {repr(k): v for k, v in
                             sorted(self.selection_scores.items())}
    return d

  @classmethod
  def from_dict(cls, d: Any, where: str) -> "ResultRecord":
    """Checks every field's presence and type; errors name `where`."""
    if not isinstance(d, Mapping):
      raise errors.DataError(f"{where}: expected an object, got "
                             f"{type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    missing = sorted(n for n, f in fields.items() if n not in d and
                     f.default is dataclasses.MISSING and
                     f.default_factory is dataclasses.MISSING)
    if unknown or missing:
      raise errors.DataError(f"{where}: missing fields {missing}, unknown "
                             f"fields {unknown}")
    _check_types(d, where)
    try:
      return cls(**{**d, "selection_scores": {
          float(k): v for k, v in d.get("selection_scores", {}).items()}})
    except (errors.LtaError, ValueError, TypeError) as e:
      raise errors.DataError(f"{where}: {e}") from None


_TYPES = {"method": str, "task": str, "language": str, "split": str,
          "scores": dict, "num_examples": int, "sources": list,
          "lam": (int, float, type(None)), "selection_split": str,
          "selection_metric": str, "selection_scores": dict, "adapter": str,
          "base_checkpoint": str, "notes": dict}


def _check_types(d: Mapping[str, Any], where: str) -> None:
  for name, want in _TYPES.items():
    if name in d and not isinstance(d[name], want):
      raise errors.DataError(f"{where}: field {name!r} is "
                             f"{type(d[name]).__name__}, expected "
                             f"{getattr(want, '__name__', 'a number')}")
  for name in ("scores", "selection_scores"):
    for k, v in d.get(name, {}).items():
      if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise errors.DataError(f"{where}: {name}[{k!r}] = {v!r} is not a "
                               "number")
  for k, v in d.get("notes", {}).items():
    if not isinstance(v, str):
      raise errors.DataError(f"{where}: notes[{k!r}] = {v!r} is not a string")


def write_records(out_dir: str, records: Sequence[ResultRecord]) -> str:
  """Writes `out_dir/results.json`; returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, RESULTS_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"format_version": FORMAT_VERSION,
               "records": [r.to_dict() for r in records]}, f, indent=2,
              ensure_ascii=False)
  return path


def read_records(path: str) -> list[ResultRecord]:
  """The records of a results.json, or of the one in directory `path`."""
  if os.path.isdir(path):
    path = os.path.join(path, RESULTS_FILE)
  if not os.path.isfile(path):
    raise errors.MissingFileError(
        f"{path} not found: give an `lta eval` or `lta pipeline` output "
        f"directory (one that holds {RESULTS_FILE})")
  with open(path, encoding="utf-8") as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.DataError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(data, dict) or not isinstance(data.get("records"), list):
    raise errors.DataError(f"{path}: expected an object with a 'records' "
                           "list")
  version = data.get("format_version")
  if version != FORMAT_VERSION:
    raise errors.DataError(f"{path}: format_version={version!r}; this lta "
                           f"reads version {FORMAT_VERSION}")
  records = [ResultRecord.from_dict(r, f"{path}: record {i}")
             for i, r in enumerate(data["records"])]
  if not records:
    raise errors.DataError(f"{path}: no records")
  return records


def is_number(value: Any) -> bool:
  """A real score: not None, not NaN, not a note saying why there is none."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and not math.isnan(value))
