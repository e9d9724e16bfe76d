import csv
import json
import math

import pytest

from lta import reporting
from lta import sweep
from lta.evaluation import TaskResult


def _result(lang, rouge2, fidelity):
  return TaskResult(f"xlsum.{lang}", lang,
                    {"rouge2": rouge2, "language_fidelity": fidelity},
                    [{"task": f"xlsum.{lang}", "language": lang, "index": 0,
                      "inputs": "summarize: x", "target": "t",
                      "prediction": "p"}])


def test_markdown_table_has_paper_layout_and_average():
  table = reporting.markdown_table(
      {"Baseline": {"mr": 20.5, "gu": 30.3}, "Add": {"mr": 21.0}},
      ["mr", "gu"])
  lines = table.strip().splitlines()
  assert lines[0] == "| Method | Mr | Gu | Avg |"
  assert lines[2] == "| Baseline | 20.5 | 30.3 | 25.4 |"
  assert lines[3] == "| Add | 21.0 | – | 21.0 |"


def test_write_results_files_agree(tmp_path):
  results = {"Baseline": [_result("pt", 10.0, 50.0), _result("uk", 20.0, 0.0)],
             "Add": [_result("pt", 12.0, 75.0), _result("uk", 18.0, 25.0)]}
  paths = reporting.write_results(str(tmp_path), results, caption="cap")
  rows = list(csv.DictReader(open(paths["scores.csv"])))
  assert len(rows) == 8
  assert {(r["method"], r["language"], r["metric"]) for r in rows} >= {
      ("Add", "uk", "rouge2"), ("Baseline", "pt", "language_fidelity")}
  nested = json.load(open(paths["scores.json"]))
  assert nested["Add"]["pt"]["rouge2"] == 12.0
  preds = [json.loads(l) for l in open(paths["predictions.jsonl"])]
  assert len(preds) == 4 and {p["method"] for p in preds} == {"Add",
                                                              "Baseline"}
  table = open(paths["table.md"]).read()
  assert "| Add | 12.0 | 18.0 | 15.0 |" in table
  assert "| Baseline | 50.0 | 0.0 | 25.0 |" in table  # fidelity table
  assert "cap" in table


def test_relative_improvement_and_plots(tmp_path):
  rel = reporting.relative_improvement({"en": {"pt": 12.0, "uk": 9.0}},
                                       {"en": {"pt": 10.0, "uk": 10.0}})
  assert rel == {"en": {"pt": pytest.approx(20.0), "uk": pytest.approx(-10.0)}}
  heat = reporting.plot_heatmap(rel, str(tmp_path / "heat.png"))
  line = reporting.plot_lambda_sweep({"pt": {0.3: 1.0, 0.7: 2.0}},
                                     str(tmp_path / "sweep.png"))
  for path in (heat, line):
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_sweep_picks_the_best_lambda_per_language():
  scores = sweep.sweep(lambda lam: {"pt": -(lam - 0.7) ** 2, "uk": lam},
                       [0.3, 0.5, 0.7, 0.9])
  assert sweep.best_lambda(scores) == {"pt": 0.7, "uk": 0.9}
  assert sweep.best_lambda({"pt": {0.3: 1.0, 0.9: 1.0}}) == {"pt": 0.9}
  with pytest.raises(ValueError, match="lambdas"):
    sweep.lambda_grid((0.5, 1.5))
  assert math.isclose(sum(sweep.lambda_grid()), 2.4)
