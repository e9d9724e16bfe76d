"""Table 4 in miniature (experiments/miniature_qa.gin, lta.pipeline.qa).

Default tier: the Table 4 section and its numbers from constructed
per-seed QA results. Slow: the reduced larger miniature, first without the
QA option, then with it on the same workdir: only the QA task vector and
its scores are new, and the section's intervals are those of the
per-example scores re-read from the runs.
"""

import json

import numpy as np
import pytest

from lta.eval import methods
from lta.eval import paired_bootstrap
from lta.jobs import miniature
from lta.pipeline import qa
from tests import cli_run

TARGETS = ("pt", "fa")
LABELS = [methods.label(name) for name in qa.METHODS]


def _cell(f1_by_method, lam=0.5):
  return {"lambda": lam, "examples": {}, "scores": {
      name: {"f1": f1, "em": f1 / 2, "language_fidelity": 100.0}
      for name, f1 in f1_by_method.items()}}


def _effect(value):
  return paired_bootstrap.paired_effect(np.full((2, 1, 4), value),
                                        num_samples=20).to_dict()


def test_table4_section_from_constructed_results(tmp_path):
  f1 = {3: {"pt": (10.0, 20.0, 30.0), "fa": (0.0, 10.0, 40.0)},
        7: {"pt": (20.0, 20.0, 20.0), "fa": (10.0, 30.0, 20.0)}}
  for seed, by_target in f1.items():
    results = tmp_path / f"seed_{seed}" / "results"
    results.mkdir(parents=True)
    (results / qa.QA_FILE).write_text(json.dumps({
        "task_vector_on_source": {"en": {"f1": 90.0 + seed, "em": 80.0}},
        "targets": {t: _cell(dict(zip(qa.METHODS, v)))
                    for t, v in by_target.items()}}))
  effects = {k: {label: {t: _effect(1.0 if k == "f1" else 0.0)
                         for t in TARGETS + (miniature.AVG,)}
                 for label in LABELS[1:]} for k in miniature.QA_METRICS}
  pcfg = miniature.pipeline.PipelineConfig(targets=TARGETS, task_steps=3)
  result = miniature.qa_results(str(tmp_path), (3, 7), pcfg, effects)
  add_subtract = result["summary"][LABELS[2]]
  assert add_subtract["pt"]["f1"]["mean"] == pytest.approx(25.0)
  assert add_subtract["avg"]["f1"]["mean"] == pytest.approx(27.5)
  assert add_subtract["fa"]["em"]["mean"] == pytest.approx(15.0)
  assert result["per_seed"]["7"]["lambdas"] == {"pt": 0.5, "fa": 0.5}
  assert len(result["paired_verdicts"]) == 2 * len(miniature.QA_METRICS)
  assert result["paired_verdicts"][0].startswith(
      f"SQuAD F1: {LABELS[1]} beats the baseline")

  text = "\n".join(miniature.qa_sections(
      result, TARGETS, miniature.MiniatureConfig(qa=True), pcfg))
  assert "## Table 4 in miniature: the QA-like task" in text
  assert "trained on en (3 steps)" in text
  assert "seed 3: F1 93.0, exact match 80.0; seed 7: F1 97.0" in text
  assert "### SQuAD F1, test, mean ± std over 2 seeds" in text
  assert f"| {LABELS[2]} | 25.0 ± 7.1 | 30.0 ± 14.1 | 27.5 ± 10.6 |" in text
  assert ("### Δ SQuAD exact match (%) over the baseline, paired over 2 "
          "seed(s) × 4 test examples") in text
  for sentence in result["paired_verdicts"]:
    assert f"* {sentence}" in text


TINY = ["--gin_file=experiments/miniature_large.gin",
        "--gin.MiniatureConfig.seeds=(3,)",
        "--gin.MiniatureConfig.bootstrap_samples=200",
        '--gin.PipelineConfig.world_preset="tiny"',
        '--gin.PipelineConfig.targets=("pt", "fa")',
        "--gin.PipelineConfig.pretrain_steps=4",
        "--gin.PipelineConfig.task_steps=3",
        "--gin.PipelineConfig.language_steps=2",
        "--gin.PipelineConfig.batch_size=4",
        "--gin.PipelineConfig.lambdas=(0.5, 0.9)",
        "--gin.PipelineConfig.eval_examples=4"]


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("miniature_qa")
  flags = TINY + [f'--gin.MiniatureConfig.workdir="{out}"']
  cli_run.run_module("lta.cli.miniature", flags, timeout=3600)
  again = cli_run.run_module(
      "lta.cli.miniature",
      flags + ["--gin_file=experiments/miniature_qa.gin"], timeout=3600)
  return out, again.stdout


@pytest.mark.slow
def test_qa_option_reuses_the_finished_run(qa_run):
  out, stdout = qa_run
  trained = [line for line in stdout.splitlines()
             if ", 3 steps" in line or ", 2 steps" in line
             or "pre-training" in line]
  assert trained and all("cached, skipped" in line for line in trained
                         if "synthetic_qa" not in line), trained
  assert "task_qa_en: synthetic_qa.en, 3 steps" in stdout
  assert "task_qa_en: synthetic_qa.en, 3 steps: cached" not in stdout
  assert (out / "seed_3" / "task_qa_en" / "adapter").exists()


@pytest.mark.slow
def test_table4_section_replays_the_per_example_scores(qa_run):
  from lta.pipeline import paired_results  # pylint: disable=g-import-not-at-top
  out, _ = qa_run
  table = (out / "results" / "table.md").read_text(encoding="utf-8")
  assert "## Table 4 in miniature: the QA-like task" in table
  report = json.loads((out / "results" / "per_seed.json").read_text())
  for sentence in report["qa"]["paired_verdicts"]:
    assert sentence in table
  pcfg = miniature.pipeline.PipelineConfig(
      **{k: (tuple(x) if isinstance(x, list) else x)
         for k, x in report["pipeline_config"].items()})
  want = paired_results.qa_effects(str(out), (3,), pcfg, ("f1",), 200)
  assert set(report["qa"]["paired"]["f1"]) == set(LABELS[1:])
  for method, by_target in report["qa"]["paired"]["f1"].items():
    assert set(by_target) == set(TARGETS) | {miniature.AVG}
    for target, effect in by_target.items():
      assert effect == pytest.approx(want["f1"][method][target])
      assert effect["n_examples"] == 4
