"""The results record (lta.eval.results) and the method registry (lta.eval.methods)."""

import json

import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta import errors
from lta.jobs import evaluate as eval_job
from lta.eval import methods
from lta.eval import results
from lta.eval.scoring import TaskResult
from lta.eval.results import ResultRecord
from tests.arithmetic import random_adapters


def _record(**changes):
  fields = dict(method="lang_task_add_subtract", task="xlsum.pt",
                language="pt", split="test",
                scores={"rouge2": 12.5, "rouge2_ci_low": 10.0,
                        "rouge2_ci_high": 15.0}, num_examples=16,
                sources=("en",), lam=0.7, selection_split="validation",
                selection_metric="rouge2",
                selection_scores={0.3: 9.0, 0.7: 11.0},
                adapter="", base_checkpoint="/data/mt5-base")
  fields.update(changes)
  return ResultRecord(**fields)


def test_every_composition_has_a_paper_label():
  assert set(arithmetic.COMPOSITIONS) <= set(methods.METHODS)
  labels = [m.label for m in methods.METHODS.values()]
  assert len(set(labels)) == len(labels)
  # The row names of the paper's Tables 1 and 2.
  assert [methods.label(n) for n in (
      "lang_task_add", "lang_task_add_subtract", "task_only_add_all",
      "task_only_add_related", "lang_task_add_subtract_related",
      "baseline_best", "baseline_multilingual")] == [
          "Language and Task (Add)", "Language and Task (Add and Subtract)",
          "Task-only (Add all)", "Task-only (Add related)",
          "Language and Task (Add and Subtract related)", "Baseline (best)",
          "Baseline (multilingual)"]
  assert methods.label("task_vector", ["ja"]) == "Task vector (Ja)"
  assert methods.short_label("lang_task_add_subtract") == "+ lang − lang_src"
  assert methods.instance_label("lang_task_add", 0.5) == "+ lang, λ=0.5"
  assert methods.instance_label("task_only", 1.0) == "task vector"
  with pytest.raises(errors.ConfigError, match="did you mean 'lang_task_add'"):
    methods.get("lang_task_ad")


def test_records_round_trip_through_results_json(tmp_path):
  records = [_record(), _record(method="task_only", lam=None,
                                selection_scores={1.0: 8.0}),
             _record(method="base", sources=(), task="tydiqa_goldp.fi",
                     language="fi", scores={"f1": 60.0, "exact_match": 40.0},
                     selection_split="", selection_metric="",
                     selection_scores={}, lam=None)]
  path = results.write_records(str(tmp_path), records)
  assert path == str(tmp_path / results.RESULTS_FILE)
  assert results.read_records(str(tmp_path)) == records
  back = results.read_records(path)[0]
  assert back.selection_scores == {0.3: 9.0, 0.7: 11.0}
  assert back.sources == ("en",) and back.label == (
      "Language and Task (Add and Subtract)")
  assert back.metric == "rouge2" and back.main_score == 12.5
  assert results.read_records(path)[2].metric == "f1"


def test_from_scored_moves_the_chosen_lambda_out_of_the_scores():
  result = TaskResult("xlsum.pt", "pt", {"rouge2": 3.0, "lambda": 0.5},
                      [{}, {}])
  r = ResultRecord.from_scored("lang_task_add", result, split="test")
  assert r.lam == 0.5 and "lambda" not in r.scores and r.num_examples == 2
  # A method without λ keeps none, whatever the selection stored.
  assert ResultRecord.from_scored("task_only", result, split="test").lam is None


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["records"][0].pop("task"),
     r"record 0: missing fields \['task'\]"),
    (lambda d: d["records"][0].update(scores=[1, 2]),
     "record 0: field 'scores' is list"),
    (lambda d: d["records"][0]["scores"].update(rouge2="high"),
     r"scores\['rouge2'\] = 'high' is not a number"),
    (lambda d: d["records"][0].update(method="lang_task_add_substract"),
     "did you mean 'lang_task_add_subtract'"),
    (lambda d: d["records"][0].update(colour="red"),
     r"unknown fields \['colour'\]"),
    (lambda d: d.update(format_version=99), "format_version=99"),
    (lambda d: d.update(records=[]), "no records"),
])
def test_bad_results_files_are_refused_naming_file_and_field(tmp_path, edit,
                                                            message):
  path = results.write_records(str(tmp_path), [_record()])
  data = json.load(open(path))
  edit(data)
  with open(path, "w") as f:
    json.dump(data, f)
  with pytest.raises(errors.DataError, match=message) as e:
    results.read_records(path)
  assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_missing_or_broken_files(tmp_path):
  with pytest.raises(errors.MissingFileError, match="results.json not found"):
    results.read_records(str(tmp_path))
  (tmp_path / results.RESULTS_FILE).write_text("{not json")
  with pytest.raises(errors.DataError, match="not valid JSON"):
    results.read_records(str(tmp_path))


def test_eval_compares_with_the_single_source_baseline_only():
  assert eval_job.compared_methods("lang_task_add_subtract", ["en"]) == [
      "task_only", "lang_task_add_subtract"]
  # Table 2's runs: default (related) or several sources have no baseline
  # (the task-only composition used to fail on them).
  assert eval_job.compared_methods("task_only_add_related", None) == [
      "task_only_add_related"]
  assert eval_job.compared_methods("lang_task_add_subtract_related",
                                   ["ar", "en"]) == [
                                       "lang_task_add_subtract_related"]
  assert eval_job.compared_methods("task_only", ["en"]) == ["task_only"]


def test_an_adapter_evaluated_as_is_is_labelled_by_its_manifest():
  rng = np.random.default_rng(0)
  trained = random_adapters.make_adapter(rng, language="ja")
  assert eval_job.adapter_method(trained.manifest) == (
      "task_vector", {"sources": ("ja",)})
  mixture = random_adapters.make_adapter(rng, task="xlsum_seen", language="")
  assert eval_job.adapter_method(mixture.manifest) == (
      "baseline_multilingual", {})
  lang_pt = random_adapters.make_adapter(rng, task="mc4_prefix_lm",
                                         language="pt")
  lang_en = random_adapters.make_adapter(rng, task="mc4_prefix_lm",
                                         language="en")
  task_en = random_adapters.make_adapter(rng, language="en")
  composed = arithmetic.compose(
      "lang_task_add_subtract", task_vectors={"en": task_en},
      language_vectors={"en": lang_en, "pt": lang_pt}, target="pt",
      sources="en", lam=0.7)
  merged = composed.manifest
  method, fields = eval_job.adapter_method(merged)
  assert (method, fields) == ("lang_task_add_subtract", {"sources": ("en",)})
