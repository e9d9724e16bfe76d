"""`lta sweep` end to end: a λ sweep of `lta eval` on the tiny model, on CPU.

Builds the tiny pipeline (synthetic data, tiny base, LoRA task and language
vectors; about two minutes), then sweeps λ over the add-and-subtract
composition, one `lta eval` job per λ plus one for the task-vector baseline,
and checks the collected table against each job's scores.json, and that
the jobs after the first λ compiled nothing (they load every program from
the sweep's shared compilation cache).
"""

import csv
import json
import os

import pytest

from lta.eval import methods
from tests import cli_run

LAMBDAS = (0.3, 0.5, 0.9)
# scores.json and sweep.csv name methods by their table label.
ADD_SUBTRACT = methods.label("lang_task_add_subtract", ("en",))


@pytest.mark.slow
def test_lambda_sweep_on_the_tiny_model(tmp_path):
  work = tmp_path / "pipeline"
  cli_run.run_module("lta.cli.pipeline",
                     cli_run.tiny_pipeline_flags(work, (0.5,), 2))
  tasks = {"en": str(work / "task_en" / "adapter")}
  langs = {l: str(work / f"lang_{l}" / "adapter") for l in ("en", "pt", "uk")}
  command = [
      "lta", "eval", "--gin_file=runs/eval.gin",
      f'--gin.run_eval.base_checkpoint="{work / "base" / "model"}"',
      "--gin.run_eval.tasks=['xlsum.pt', 'xlsum.uk']",
      "--gin.TASK_FEATURE_LENGTHS={'inputs': 128, 'targets': 16}",
      '--gin.run_eval.composition="lang_task_add_subtract"',
      "--gin.run_eval.sources=['en']",
      f"--gin.run_eval.task_vectors={tasks!r}",
      f"--gin.run_eval.language_vectors={langs!r}",
      "--gin.run_eval.max_examples=2",
      f"--tfds_data_dir={work / 'tfds'}",
      f'--gin.lta.vocab.get_vocabulary.path="{work / "spm" / "spm.model"}"']
  sweep_dir = tmp_path / "sweep"
  proc = cli_run.run_module(
      "lta.cli.main", ["sweep", "--mode=local", f"--workdir={sweep_dir}",
                       f"--grid=LAMBDA={list(LAMBDAS)}",
                       "--output_binding=run_eval.output_dir", "--",
                       *command])
  assert "| job | LAMBDA | method | pt | uk | avg |" in proc.stdout
  rows = list(csv.DictReader(open(sweep_dir / "sweep.csv")))
  # One baseline row (no λ), one composition row per λ.
  baseline = [r for r in rows if r["method"] != ADD_SUBTRACT]
  assert [(r["job"], r["LAMBDA"]) for r in baseline] == [("baseline", "")]
  assert len(rows) == 1 + len(LAMBDAS)
  jobs = json.load(open(sweep_dir / "jobs.json"))
  assert jobs[0]["name"] == "baseline"
  assert set(json.load(open(os.path.join(jobs[0]["output_dir"],
                                         "scores.json")))) == {
                                             baseline[0]["method"]}
  for job, lam in zip(jobs[1:], LAMBDAS):
    scores = json.load(open(os.path.join(job["output_dir"], "scores.json")))
    assert set(scores) == {ADD_SUBTRACT}
    comp = scores[ADD_SUBTRACT]
    assert comp["pt"]["lambda"] == lam
    row = next(r for r in rows if r["job"] == job["name"] and
               r["method"] == ADD_SUBTRACT)
    assert float(row["LAMBDA"]) == lam
    for lang in ("pt", "uk"):
      assert float(row[lang]) == pytest.approx(comp[lang]["rouge2"])
    assert float(row["avg"]) == pytest.approx(
        (comp["pt"]["rouge2"] + comp["uk"]["rouge2"]) / 2)
  # Every program the λ jobs ran was in the shared cache once the first λ
  # job finished: the others compiled nothing new.
  cache = sweep_dir / "jax_cache"
  first_done = os.path.getmtime(os.path.join(jobs[1]["output_dir"],
                                             "scores.json"))
  entries = [e for e in cache.iterdir()
             if not e.name.startswith(".") and not e.name.endswith("-atime")]
  assert entries
  assert max(e.stat().st_mtime for e in entries) <= first_done
