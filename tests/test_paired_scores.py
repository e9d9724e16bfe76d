"""Per-example scores re-read from a run's predictions.jsonl, and checked."""

import json
import os

import numpy as np
import pytest

from lta import errors
from lta.eval import metrics
from lta.eval import paired_scores
from lta.pipeline import rescoring
from lta.pipeline import run as pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(REPO, "tests", "fixtures", "spm", "tiny_en_ru.model")
TARGETS = ["the cat sat", "a dog ran home", "the bird flew"]
PREDICTIONS = {"base": ["the cat sat", "a dog ran", "bird"],
               "method": ["the cat sat", "a dog ran home", "the bird sang"]}


def _write_run(tmp_path, lang="pt"):
  path = tmp_path / "predictions.jsonl"
  scores = {}
  with open(path, "w", encoding="utf-8") as f:
    for method, preds in PREDICTIONS.items():
      rouge = metrics.rouge_spm(TARGETS, preds, VOCAB)["rouge2"]
      exact = 100 * np.mean([p == t for p, t in zip(preds, TARGETS)])
      scores[method] = {lang: {"rouge2": rouge, "exact_match": exact}}
      # Written out of order: the index orders them.
      for i in reversed(range(len(preds))):
        f.write(json.dumps({"method": method, "split": "test",
                            "language": lang, "index": i,
                            "target": TARGETS[i],
                            "prediction": preds[i]}) + "\n")
      f.write(json.dumps({"method": method, "split": "validation",
                          "language": lang, "index": 0, "target": "x",
                          "prediction": "y"}) + "\n")
  return str(path), scores


def test_per_example_scores_average_to_the_runs_means(tmp_path):
  path, scores = _write_run(tmp_path)
  for metric in ("rouge2", "exact_match"):
    got = paired_scores.paired_scores(path, scores, ["base", "method"],
                                      ["pt"], metric, VOCAB)
    assert got["base"].shape == (1, 3)
    for method in PREDICTIONS:
      assert got[method].mean() == pytest.approx(
          scores[method]["pt"][metric])
  exact = paired_scores.paired_scores(path, scores, ["method"], ["pt"],
                                      "exact_match", VOCAB)["method"]
  np.testing.assert_array_equal(exact[0], [100.0, 100.0, 0.0])


def test_a_disagreeing_mean_or_a_missing_row_is_refused(tmp_path):
  path, scores = _write_run(tmp_path)
  scores["method"]["pt"]["exact_match"] = 50.0
  with pytest.raises(errors.DataError, match="averages 66.66.*50.0"):
    paired_scores.paired_scores(path, scores, ["method"], ["pt"],
                                "exact_match", VOCAB)
  with pytest.raises(errors.DataError, match="no test predictions.*'uk'"):
    paired_scores.paired_scores(path, scores, ["method"], ["uk"],
                                "exact_match", VOCAB)
  with pytest.raises(errors.ConfigError, match="did you mean 'rouge2'"):
    paired_scores.per_example([], "pt", "rouge_2", VOCAB)


def test_ablations_and_extra_methods_are_checked_with_a_hint():
  assert rescoring.parse_ablation("space=delta") == ("space", "delta")
  assert rescoring.parse_ablation("language_steps=900") == (
      "language_steps", 900)
  assert rescoring.parse_ablation("lambdas=0.3/0.5") == ("lambdas",
                                                         (0.3, 0.5))
  with pytest.raises(errors.ConfigError, match="did you mean 'lambdas'"):
    rescoring.parse_ablation("lambda=0.3")
  with pytest.raises(errors.ConfigError, match="bad value"):
    rescoring.parse_ablation("language_steps=many")
  cfg = pipeline.PipelineConfig(extra_methods=("task_only_add_all",))
  assert list(cfg.methods.values())[-1] == "task_only_add_all"
  with pytest.raises(errors.ConfigError,
                     match="did you mean 'task_only_add_all'"):
    pipeline.PipelineConfig(extra_methods=("task_only_add_al",))


def test_squad_scores_of_the_qa_task_per_example():
  records = [{"target": "juji", "prediction": " juji "},
             {"target": "tibipi", "prediction": "tibipi vo"},
             {"target": "hora", "prediction": "lija"}]
  f1 = paired_scores.per_example(records, "pt", "f1", VOCAB)
  em = paired_scores.per_example(records, "pt", "em", VOCAB)
  np.testing.assert_allclose(f1, [100.0, 100 * 2 / 3, 0.0])
  np.testing.assert_array_equal(em, [100.0, 0.0, 0.0])
  want = metrics.squad_f1_em([r["target"] for r in records],
                             [r["prediction"] for r in records])
  assert f1.mean() == pytest.approx(want["f1"])
  assert em.mean() == pytest.approx(want["em"])
