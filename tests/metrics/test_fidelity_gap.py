"""A language the identifier lacks: an explicit n/a everywhere, never NaN.

Runs the code path of `lta eval` and the pipeline: `evaluation.score_task`
on the registered XLSum tasks, `reporting.write_results`, and the
pipeline's console line.
"""

import csv
import json
import logging

import gin
import numpy as np
import pytest

from lta.eval import scoring as evaluation
from lta.eval import langid
from lta.pipeline import run as pipeline
from lta.eval import report as reporting
from lta.eval import results
from lta.data import vocab
from lta.eval.results import ResultRecord
from metrics_fixtures import read_jsonl

HAUSA = [("Gwamnati ta sanar da sabon shiri domin taimaka wa kananan "
          "'yan kasuwa.", "Gwamnati ta fitar da shirin taimaka wa 'yan "
                          "kasuwa."),
         ("Ambaliyar ruwa ta tilasta wa daruruwan iyalai barin gidajensu.",
          "Daruruwan iyalai sun bar gidajensu bayan ambaliyar ruwa.")]
NOTE = "n/a: the identifier (fastText lid.176) has no 'ha'"


@pytest.fixture
def tiny_vocabulary(spm_model_path):
  import lta_tasks  # pylint: disable=unused-import  (registers xlsum.*)
  with gin.unlock_config():
    gin.bind_parameter("lta.vocab.get_vocabulary.path", spm_model_path)
  yield vocab.get_vocabulary()
  gin.clear_config()


def _score(task, pairs, vocabulary):
  """score_task on (target, prediction) pairs, as decoding would give."""
  examples = [{"inputs": np.array(vocabulary.encode(t), np.int32),
               "inputs_pretokenized": t.encode(),
               "targets": np.array(vocabulary.encode(t), np.int32),
               "targets_pretokenized": t.encode()} for t, _ in pairs]
  ids = [np.array(vocabulary.encode(p), np.int32) for _, p in pairs]
  return evaluation.score_task(task, examples, ids)


def test_fidelity_gap_is_explicit_and_warned_once(tiny_vocabulary, tmp_path,
                                                 caplog, monkeypatch):
  monkeypatch.setattr(langid, "_GAPS_WARNED", set())
  portuguese = [(r["target"], r["prediction"])
                for r in read_jsonl("summaries.jsonl") if r["lang"] == "pt"]
  with caplog.at_level(logging.WARNING, logger="lta.eval.langid"):
    hausa = _score("xlsum.ha", HAUSA, tiny_vocabulary)
    again = _score("xlsum.ha", HAUSA[:1], tiny_vocabulary)
    pt = _score("xlsum.pt", portuguese, tiny_vocabulary)
  warnings = [r.getMessage() for r in caplog.records
              if r.name == "lta.eval.langid"]
  assert warnings == [f"Language fidelity is not measured for 'ha': {NOTE}"]
  for result in (hausa, again):
    assert "language_fidelity" not in result.scores
    assert result.notes == {"language_fidelity": NOTE}
  assert pt.notes == {} and 0 <= pt.scores["language_fidelity"] <= 100

  hausa.scores["lambda"] = pt.scores["lambda"] = 0.5
  records = [ResultRecord.from_scored("lang_task_add_subtract", r,
                                      split="test") for r in (hausa, pt)]
  label = records[0].label
  paths = reporting.write_results(str(tmp_path), records)
  assert results.read_records(str(tmp_path))[0].notes == {
      "language_fidelity": NOTE}
  scores = json.load(open(paths["scores.json"]))
  assert scores[label]["ha"]["language_fidelity"] == NOTE
  assert isinstance(scores[label]["pt"]["language_fidelity"], float)
  rows = list(csv.DictReader(open(paths["scores.csv"])))
  assert {"method": label, "task": "xlsum.ha", "language": "ha",
          "split": "test", "metric": "language_fidelity",
          "value": NOTE} in rows
  table = open(paths["table.md"]).read()
  fidelity = table.split("### XLSum (test): language fidelity")[1]
  pt_value = f"{pt.scores['language_fidelity']:.1f}"
  # No average over a row with a language missing its value.
  assert f"| {label} | n/a | {pt_value} | – |" in fidelity
  assert NOTE in fidelity.splitlines()
  for text in (open(paths["scores.json"]).read(), table,
               open(paths["scores.csv"]).read()):
    assert "nan" not in text.lower()

  line = pipeline.score_line(records[0])
  assert line.endswith(f"| fidelity {NOTE}") and "nan" not in line
  assert pipeline.score_line(records[1]).endswith(
      f"| fidelity {pt.scores['language_fidelity']:.0f}%")
