import csv
import json
import struct

import pytest

from lta.eval import scoring as evaluation
from lta.eval import report as reporting
from lta.eval import results
from lta.eval import lambda_selection
from lta.eval.results import ResultRecord


def _record(method, lang, rouge2, fidelity=None, lam=None, sources=("en",),
            sweep_scores=None):
  scores = {"rouge2": rouge2}
  if fidelity is not None:
    scores["language_fidelity"] = fidelity
  return ResultRecord(method, f"xlsum.{lang}", lang, "test", scores, 1,
                      sources=sources, lam=lam, selection_split="validation",
                      selection_metric="rouge2",
                      selection_scores=sweep_scores or {})


def _example(lang):
  return [{"task": f"xlsum.{lang}", "language": lang, "index": 0,
           "inputs": "summarize: x", "target": "t", "prediction": "p"}]


def _png_size(path):
  with open(path, "rb") as f:
    head = f.read(24)
  assert head[:8] == b"\x89PNG\r\n\x1a\n"
  return struct.unpack(">II", head[16:24])


def test_paper_layout_average_only_over_complete_rows():
  records = [_record("task_only", "mr", 20.5), _record("task_only", "gu", 30.3),
             _record("lang_task_add", "mr", 21.0, lam=0.7)]
  table = reporting.metric_table(records)
  lines = table.markdown().strip().splitlines()
  assert lines[0] == "### XLSum (test): ROUGE-2 (spm)"
  assert lines[2] == "| Method | Mr | Gu | Avg |"
  assert lines[4] == "| Baseline (task vector only) | 20.5 | 30.3 | 25.4 |"
  # An average over fewer languages would not compare with the other rows.
  assert lines[5] == "| Language and Task (Add) | 21.0 | – | – |"
  assert table.csv_rows()[1] == ["Baseline (task vector only)", "20.5",
                                 "30.3", repr((20.5 + 30.3) / 2)]


def test_latex_is_booktabs_and_escaped():
  records = [_record("task_vector", "pt", 10.0, sources=("en",)),
             _record("lang_task_add", "pt", 12.25, lam=0.7)]
  table = reporting.metric_table(records, caption="50% of λ_1 & more")
  tex = table.latex()
  assert tex.count(r"\toprule") == tex.count(r"\midrule") == 1
  assert r"\bottomrule" in tex and r"\begin{tabular}{lrr}" in tex
  assert r"Method & Pt & Avg \\" in tex
  assert r"Language and Task (Add) & 12.2 & 12.2 \\" in tex
  assert r"50\% of $\lambda$\_1 \& more" in tex


def test_write_results_files_agree(tmp_path):
  records = [_record("task_only", "pt", 10.0, 50.0),
             _record("task_only", "uk", 20.0, 0.0),
             _record("lang_task_add_subtract", "pt", 12.0, 75.0, lam=0.7),
             _record("lang_task_add_subtract", "uk", 18.0, 25.0, lam=0.3)]
  paths = reporting.write_results(
      str(tmp_path), records, [_example(r.language) for r in records],
      caption="cap")
  rows = list(csv.DictReader(open(paths["scores.csv"])))
  assert len(rows) == 8
  add_sub = "Language and Task (Add and Subtract)"
  assert {(r["method"], r["language"], r["metric"]) for r in rows} >= {
      (add_sub, "uk", "rouge2"),
      ("Baseline (task vector only)", "pt", "language_fidelity")}
  nested = json.load(open(paths["scores.json"]))
  assert nested[add_sub]["pt"] == {"rouge2": 12.0, "language_fidelity": 75.0,
                                   "lambda": 0.7}
  assert "lambda" not in nested["Baseline (task vector only)"]["pt"]
  preds = [json.loads(l) for l in open(paths["predictions.jsonl"])]
  assert len(preds) == 4 and {p["method"] for p in preds} == {
      add_sub, "Baseline (task vector only)"}
  assert results.read_records(paths["results.json"]) == records
  table = open(paths["table.md"]).read()
  assert f"| {add_sub} | 12.0 | 18.0 | 15.0 |" in table
  assert "cap" in table
  # The λ chosen per target, and the fidelity table.
  assert "### λ chosen per target on validation ROUGE-2 (spm)" in table
  assert f"| {add_sub} | 0.7 | 0.3 |" in table
  assert "| Baseline (task vector only) | 50.0 | 0.0 | 25.0 |" in table


def test_relative_improvement_pairs_each_source_with_its_baseline():
  records = [_record("task_only", "pt", 10.0), _record("task_only", "uk", 10.0),
             _record("lang_task_add_subtract", "pt", 12.0, lam=0.5),
             _record("lang_task_add_subtract", "uk", 9.0, lam=0.5),
             _record("task_only", "pt", 20.0, sources=("ja",)),
             _record("lang_task_add_subtract", "pt", 25.0, lam=0.5,
                     sources=("ja",))]
  rel = reporting.relative_improvement(records, "lang_task_add_subtract")
  assert rel == {"en": {"pt": pytest.approx(20.0), "uk": pytest.approx(-10.0)},
                 "ja": {"pt": pytest.approx(25.0)}}


def test_heatmap_is_readable_and_annotates_every_cell(tmp_path):
  targets = ["mr", "gu", "zh", "ne", "pt", "si", "so", "vi", "yo", "uk", "fa"]
  matrix = {s: {t: (i - j) * 1.5 for j, t in enumerate(targets)}
            for i, s in enumerate(["ar", "en", "ja"])}
  fig = reporting.heatmap_figure(matrix, "Relative ROUGE-2 improvement of a "
                                 "long method name over the baseline (%)",
                                 "target", "source", "relative (%)")
  ax = fig.axes[0]
  cells = [t.get_text() for t in ax.texts]
  assert len(cells) == 3 * len(targets) and "+1.5" in cells and "-3.0" in cells
  assert ax.get_xlabel() == "target" and ax.get_ylabel() == "source"
  # Nothing drawn outside the canvas (the old title was clipped).
  fig.canvas.draw()
  canvas = fig.bbox
  for text in [ax.title, *ax.texts, ax.xaxis.label, ax.yaxis.label]:
    box = text.get_window_extent()
    assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1, text
    assert box.y0 >= canvas.y0 - 1 and box.y1 <= canvas.y1 + 1, text
  path = reporting.save_figure(fig, str(tmp_path / "heat.png"))
  width, height = _png_size(path)
  assert width >= 1200 and height >= 450


def test_lambda_plot_marks_baseline_and_chosen_lambda(tmp_path):
  sweep_pt = {0.3: 1.0, 0.5: 3.0, 0.7: 2.0}
  records = [_record("lang_task_add_subtract", "pt", 2.5, lam=0.5,
                     sweep_scores=sweep_pt),
             _record("lang_task_add_subtract", "uk", 1.5, lam=0.7,
                     sweep_scores={0.3: 1.0, 0.5: 1.0, 0.7: 1.5})]
  baselines = [_record("task_only", "pt", 2.0, sweep_scores={1.0: 2.2})]
  fig = reporting.lambda_sweep_figure(records, baselines)
  ax = fig.axes[0]
  assert ax.get_ylabel() == "validation ROUGE-2 (spm)"
  labels = ax.get_legend_handles_labels()[1]
  assert labels == ["+ lang − lang_src", "Baseline (task vector only)",
                    "chosen λ"]
  baseline_line, chosen = ax.lines[1], ax.lines[2]
  assert list(baseline_line.get_ydata()) == [2.2, 2.2]
  assert list(chosen.get_xdata()) == [0.5] and list(chosen.get_ydata()) == [3.0]
  path = reporting.save_figure(fig, str(tmp_path / "sweep.png"))
  assert _png_size(path)[0] >= 900


def test_decode_progress_reports_rate_and_eta_after_compilation():
  lines, now = [], [0.0]
  progress = evaluation.DecodeProgress("xlsum.pt (test) | base model",
                                       lines.append, interval_s=10.0,
                                       clock=lambda: now[0])
  for batch, t in enumerate([30.0, 32.0, 34.0, 40.0, 50.0], start=1):
    now[0] = t
    progress(batch, 5, min(8 * batch, 36), 36)
  # Batch 1 (compile included), then throttled to 10 s, then the end.
  assert len(lines) == 3
  assert lines[0].startswith("  decoding xlsum.pt (test) | base model: "
                             "batch 1/5, 8/36 examples")
  assert "ETA" in lines[0]
  # The rate leaves out the first batch: 24 examples in 10 s.
  assert lines[1] == ("  decoding xlsum.pt (test) | base model: batch 4/5, "
                      "32/36 examples, 2.4 examples/s, ETA 0:00:02")
  assert lines[2].endswith("done in 50.0s")


def test_sweep_picks_the_best_lambda_per_language():
  scores = lambda_selection.sweep(lambda lam: {"pt": -(lam - 0.7) ** 2, "uk": lam},
                       [0.3, 0.5, 0.7, 0.9])
  assert lambda_selection.best_lambda(scores) == {"pt": 0.7, "uk": 0.9}
  assert lambda_selection.best_lambda({"pt": {0.3: 1.0, 0.9: 1.0}}) == {"pt": 0.9}
