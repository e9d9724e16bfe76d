"""lta.pipeline.report: the sanity flag is in the table when, and only when,
a task vector fails on its own language.

The starved end-to-end run in test_pipeline_e2e.py shows the flag in the
main job's real output; this checks the decision and the table for both
outcomes, and the rows it marks.
"""

import json

import pytest

from lta.eval import methods
from lta.pipeline import run as pipeline
from lta.pipeline import report as pipeline_report
from lta.eval import results as results_lib
from lta.eval.results import ResultRecord

TARGETS = ("pt", "uk")
ALL_METHODS = pipeline.METHODS + pipeline.RELATED_METHODS


def _scored(names):
  scores = {"rouge2": 12.5, "exact_match": 25.0, "language_fidelity": 90.0}
  return [(ResultRecord(
      method=name, task=f"xlsum.{t}", language=t, split="test",
      scores=scores, num_examples=1, sources=("en",),
      lam=0.7 if methods.get(name).uses_lambda else None,
      selection_split="validation", selection_metric="rouge2",
      selection_scores={0.5: 1.0, 0.9: 2.0}),
           [{"inputs": "x", "targets": "y", "prediction": "y"}])
          for name in names for t in TARGETS]


def _write(tmp_path, source_rouge2, names=pipeline.METHODS, related=None):
  related = related or {}
  rows = {methods.label(name): name for name in names}
  sanity = {"task_vector_on_source": {lang: {"rouge2": v} for lang, v
                                      in source_rouge2.items()},
            "related_sources": related,
            **pipeline_report.sanity_flags(source_rouge2, 5.0, rows, "en",
                                           related)}
  caption = "caption. " + pipeline_report.sanity_caption(sanity)
  paths = pipeline_report.write_report(str(tmp_path), _scored(names), sanity,
                                       caption, "rouge2")
  assert sorted(paths) == sorted(pipeline_report.RESULT_FILES)
  return open(paths["table.md"], encoding="utf-8").read(), sanity


def test_a_passing_check_marks_nothing(tmp_path):
  table, sanity = _write(tmp_path, {"en": 41.0})
  assert sanity["failed"] == {} and sanity["flagged_rows"] == []
  assert pipeline_report.sanity_failure(sanity) is None
  assert pipeline_report.FAILED_MARK not in table
  assert "Sanity check failed" not in table
  assert "ROUGE-2 en 41.0." in table
  baseline = methods.label("task_only")
  assert f"| {baseline} | 12.5 | 12.5 | 12.5 |" in table


def test_a_failing_check_marks_every_row_that_uses_the_vector(tmp_path):
  table, sanity = _write(tmp_path, {"en": 0.4})
  failure = pipeline_report.sanity_failure(sanity)
  assert failure.startswith("Sanity check failed") and "en 0.4" in failure
  assert f"{pipeline_report.FAILED_MARK} {failure}" in table
  for name in pipeline.METHODS:  # marked in every table it has a row in
    label = methods.label(name)
    assert f"| {label} {pipeline_report.FAILED_MARK} |" in table
    assert f"| {label} |" not in table
  saved = json.load(open(tmp_path / "sanity.json"))
  assert saved["failed"] == {"en": 0.4}
  # The records lta report reads are the scores, unmarked.
  assert {r.label for r in results_lib.read_records(str(tmp_path))} == {
      methods.label(name) for name in pipeline.METHODS}


@pytest.mark.parametrize("failed_source,flagged", [
    ("ru", ["task_only_add_related", "lang_task_add_subtract_related"]),
    ("en", list(ALL_METHODS))])
def test_related_rows_are_marked_by_the_sources_they_use(
    tmp_path, failed_source, flagged):
  scores = {"en": 40.0, "ru": 40.0, failed_source: 1.0}
  table, sanity = _write(tmp_path, scores, ALL_METHODS,
                         related={"pt": ["en"], "uk": ["en", "ru"]})
  assert sanity["flagged_rows"] == [methods.label(m) for m in flagged]
  for name in ALL_METHODS:
    label = methods.label(name)
    marked = f"| {label} {pipeline_report.FAILED_MARK} |" in table
    assert marked == (name in flagged), name
