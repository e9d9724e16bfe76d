"""`lta report`: eval output directories in, the paper's tables out.

The directories here are written by `reporting.write_results`, the writer
`lta eval` uses; tests/test_pipeline_e2e.py runs `lta report` on the
output of a real `lta eval`.
"""

import csv
import os

import pytest

from lta import errors
from lta.jobs import report as report_job
from lta.eval import report as reporting
from lta.cli import main as cli
from lta.cli import report
from lta.eval.results import ResultRecord

TARGETS = ("pt", "uk")


def _rec(method, lang, score, sources=("en",), lam=None, family="xlsum",
         split="test"):
  metric = "rouge2" if family == "xlsum" else "f1"
  return ResultRecord(method, f"{family}.{lang}", lang, split,
                      {metric: score}, 8, sources=sources, lam=lam,
                      selection_split="validation", selection_metric=metric,
                      selection_scores={0.5: score, 0.9: score - 1}
                      if lam else {1.0: score})


def _eval_dir(root, name, records):
  path = str(root / name)
  reporting.write_results(path, records)
  return path


@pytest.fixture
def table1_dirs(tmp_path):
  """Table 1 as the paper's gin files produce it: one run per composition,
  each re-scoring the task-vector baseline."""
  base = [_rec("task_only", t, 10.0 + i) for i, t in enumerate(TARGETS)]
  add = [_rec("lang_task_add", t, 11.0 + i, lam=0.5)
         for i, t in enumerate(TARGETS)]
  add_sub = [_rec("lang_task_add_subtract", t, 12.0 + i, lam=0.9)
             for i, t in enumerate(TARGETS)]
  return [_eval_dir(tmp_path, "table1_add", base + add),
          _eval_dir(tmp_path, "table1_add_subtract", base + add_sub)]


def test_table1_in_markdown_csv_and_latex(table1_dirs, tmp_path, capsys):
  out = tmp_path / "report"
  assert report.main([*table1_dirs, f"--output_dir={out}"]) == 0
  md = (out / "report.md").read_text()
  rows = [l for l in md.splitlines() if l.startswith("| ")]
  assert rows[:4] == ["| Method | Pt | Uk | Avg |",
                      "| Baseline (task vector only) | 10.0 | 11.0 | 10.5 |",
                      "| Language and Task (Add) | 11.0 | 12.0 | 11.5 |",
                      "| Language and Task (Add and Subtract) | 12.0 | 13.0 "
                      "| 12.5 |"]
  assert "| Language and Task (Add and Subtract) | 0.9 | 0.9 |" in md
  table = list(csv.reader(open(out / "xlsum_test_rouge2.csv")))
  assert table[0] == ["Method", "Pt", "Uk", "Avg"]
  assert table[3] == ["Language and Task (Add and Subtract)", "12.0", "13.0",
                      "12.5"]
  tex = (out / "report.tex").read_text()
  assert r"Language and Task (Add and Subtract) & 12.0 & 13.0 & 12.5 \\" in tex
  assert tex.count(r"\begin{table}") == tex.count(r"\bottomrule") == 2
  printed = capsys.readouterr().out
  for name in ("report.md", "report.tex", "xlsum_test_rouge2.csv",
               "xlsum_test_lambda.csv", "figure2_lang_task_add_subtract.png"):
    assert f"Wrote {out / name}" in printed


def test_conflicting_results_are_an_error(table1_dirs, tmp_path, capsys):
  other = _eval_dir(tmp_path, "other", [_rec("task_only", "pt", 9.5)])
  with pytest.raises(errors.DataError, match=(
      r"Baseline \(task vector only\) on xlsum.pt \(test\): rouge2 10.0000 "
      r"in .*table1_add, 9.5000 in .*other")):
    report_job.run_report([*table1_dirs, other], str(tmp_path / "r"))
  assert cli.main(["report", *table1_dirs, other, "--output_dir",
                    str(tmp_path / "r2")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("lta report: Conflicting results") and \
      err.count("\n") == 1


def test_best_single_task_vector_and_table4(tmp_path):
  scores = {"ar": (14.0, 9.0), "ru": (11.0, 13.0), "en": (12.0, 12.0)}
  dirs = [_eval_dir(tmp_path, f"task_{s}", [
      _rec("task_vector", t, v, sources=(s,)) for t, v in zip(TARGETS, vs)])
          for s, vs in scores.items()]
  dirs.append(_eval_dir(tmp_path, "multi", [
      _rec("baseline_multilingual", t, 12.5, sources=()) for t in TARGETS]))
  dirs.append(_eval_dir(tmp_path, "tydiqa", [
      _rec("baseline_multilingual", lang, 60.0 + i, sources=(),
           family="tydiqa_goldp", split="validation")
      for i, lang in enumerate(("bn", "fi"))]))
  out = tmp_path / "report"
  assert report.main([*dirs, f"--output_dir={out}"]) == 0
  md = (out / "report.md").read_text()
  assert "| Baseline (best) | 14.0 | 13.0 | 13.5 |" in md
  assert "best single task vector per target on test (pt: ar, uk: ru)" in md
  assert "| Baseline (multilingual) | 12.5 | 12.5 | 12.5 |" in md
  assert "### TyDi QA (validation): F1" in md
  # Table 4: each family's average; a row missing a family gets none.
  assert ("| Method | XLSum (ROUGE-2 (spm)) | TyDi QA (F1) |" in md)
  assert "| Baseline (multilingual) | 12.5 | 60.5 |" in md
  assert "| Baseline (best) | 13.5 | – |" in md
  kept = tmp_path / "kept"
  assert report.main([*dirs, f"--output_dir={kept}",
                      "--keep_task_vectors"]) == 0
  assert "| Task vector (Ar) | 14.0 | 9.0 | 11.5 |" in (
      kept / "report.md").read_text()


def test_figure2_from_one_run_per_source(tmp_path):
  dirs = []
  for source, gain in (("en", 1.2), ("ja", 0.9)):
    dirs.append(_eval_dir(tmp_path, source, [
        *[_rec("task_only", t, 10.0, sources=(source,)) for t in TARGETS],
        *[_rec("lang_task_add_subtract", t, 10.0 * gain, sources=(source,),
               lam=0.5) for t in TARGETS]]))
  out = tmp_path / "report"
  assert report.main([*dirs, f"--output_dir={out}"]) == 0
  md = (out / "report.md").read_text()
  assert ("| Language and Task (Add and Subtract), task in Ja | 9.0 | 9.0 "
          "| 9.0 |") in md
  assert "![figure2_lang_task_add_subtract.png]" in md
  assert os.path.getsize(out / "figure2_lang_task_add_subtract.png") > 10_000


def test_registered_as_a_command_with_help(capsys):
  assert cli.COMMANDS["report"] == "lta.cli.report"
  assert cli.main(["report", "--help"]) == 0
  assert "--output_dir" in capsys.readouterr().out


def test_a_directory_without_results_is_one_line(tmp_path, capsys):
  assert cli.main(["report", str(tmp_path),
                   f"--output_dir={tmp_path / 'r'}"]) == 2
  err = capsys.readouterr().err
  assert "results.json not found" in err and err.count("\n") == 1
