"""The larger miniature, reduced: paired intervals, Figure 2 and ablations.

Runs `python -m lta.cli.miniature` with experiments/miniature_large.gin and
its Table 2 / Figure 2 option on the `tiny` world for a few steps, two
seeds, with three ablations, then checks that every output is well formed
and that the paired statistics are those of the per-example scores. The
statistics themselves are tested on constructed cases in
tests/test_paired_bootstrap.py; the ablation table and the verdict wording
below (both default tier).
"""

import json

import numpy as np
import pytest

from lta.eval import methods
from lta.eval import paired_bootstrap
from lta.jobs import miniature
from tests import cli_run

TARGETS = ("pt", "uk", "vi", "fa")
SOURCES = ("en", "ru", "id", "tr", "ar")
SEEDS = (3, 7)
ABLATIONS = ("space=delta", "language_steps=3", "lambdas=0.3")
METRICS = ("rouge2", "exact_match", "language_fidelity")
SAMPLES = 200


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  out = tmp_path_factory.mktemp("miniature_large")
  args = ["--gin_file=experiments/miniature_large.gin",
          "--gin_file=experiments/miniature_related.gin",
          f'--gin.MiniatureConfig.workdir="{out}"',
          f"--gin.MiniatureConfig.seeds={SEEDS}",
          "--gin.MiniatureConfig.ablations=(" + ", ".join(
              f'"{a}"' for a in ABLATIONS) + ")",
          f"--gin.MiniatureConfig.bootstrap_samples={SAMPLES}",
          '--gin.PipelineConfig.world_preset="tiny"',
          "--gin.PipelineConfig.pretrain_steps=4",
          "--gin.PipelineConfig.task_steps=3",
          "--gin.PipelineConfig.language_steps=2",
          "--gin.PipelineConfig.eval_steps=1",
          "--gin.PipelineConfig.batch_size=4",
          "--gin.PipelineConfig.lambdas=(0.5, 0.9)",
          "--gin.PipelineConfig.eval_examples=4"]
  # Two seeds with five sources and three ablations: 6.5 minutes on one
  # core beside a benchmark (2026-12-02); over an hour on a heavily loaded
  # shared 2-core machine (one seed took 23 min at load 17).
  proc = cli_run.run_module("lta.cli.miniature", args, timeout=4 * 3600)
  assert "Verdict from the paired 95% interval" in proc.stdout
  return out


@pytest.mark.slow
def test_writes_the_paired_tables_figure2_and_ablations(workdir):
  results = workdir / "results"
  assert (results / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  table = (results / "table.md").read_text(encoding="utf-8")
  assert "| Method | Pt | Uk | Vi | Fa | Avg |" in table
  assert "| Task-only (Add all) |" in table
  assert "| task vector in | Pt | Uk | Vi | Fa |" in table
  for source in SOURCES:
    assert f"| {source} | " in table
  for ablation in ABLATIONS:
    assert f"| {ablation} | " in table
  report = json.loads((results / "per_seed.json").read_text())
  assert len(report["paired_verdicts"]) == len(METRICS)
  for sentence in report["paired_verdicts"]:
    assert sentence in table
    assert "(2 seeds, 4 test examples per target)" in sentence
  assert set(report["by_source"]["rouge2"]) == set(SOURCES)
  assert set(report["ablations"]["rouge2"]) == set(ABLATIONS)
  for metric in METRICS:
    for by_target in report["paired"][metric].values():
      assert set(by_target) == set(TARGETS) | {miniature.AVG}
      for e in by_target.values():
        assert e["low"] <= e["mean"] + 1e-9 and e["mean"] <= e["high"] + 1e-9
        assert e["outcome"] in paired_bootstrap.OUTCOMES
        assert e["n_seeds"] == 2 and e["n_examples"] == 4


@pytest.mark.slow
def test_paired_means_are_the_per_seed_deltas_and_replay(workdir):
  """The paired mean over examples equals the mean over seeds of the
  target-averaged Δ of the per-seed tables, and the interval is the
  bootstrap of the per-example differences re-read from the runs."""
  from lta.pipeline import paired_results  # pylint: disable=g-import-not-at-top
  report = json.loads((workdir / "results" / "per_seed.json").read_text())
  for v in report["verdicts"]:
    paired = report["paired"][v["metric"]][v["method"]][miniature.AVG]
    assert paired["mean"] == pytest.approx(v["delta_avg"]["mean"])
  pcfg = miniature.pipeline.PipelineConfig(
      **{k: (tuple(x) if isinstance(x, list) else x)
         for k, x in report["pipeline_config"].items()})
  tools = paired_results.scoring_tools(str(workdir), pcfg)
  method = methods.label("lang_task_add_subtract")
  base = methods.label("task_only")
  rows = paired_results._main_scores(  # pylint: disable=protected-access
      str(workdir), SEEDS, pcfg, [method, base], "rouge2", tools)
  d = np.stack([r[method] - r[base] for r in rows])
  want = paired_bootstrap.paired_effect(d, num_samples=SAMPLES).to_dict()
  assert report["paired"]["rouge2"][method][miniature.AVG] == (
      pytest.approx(want))


@pytest.mark.slow
def test_each_seed_pretrains_its_own_base(workdir):
  from lta.adapters import adapter_io  # pylint: disable=g-import-not-at-top
  fingerprints = set()
  for seed in SEEDS:
    assert (workdir / f"seed_{seed}" / "base" / "model").exists()
    _, manifest = adapter_io.load_adapter(
        str(workdir / f"seed_{seed}" / "task_en" / "adapter"))
    fingerprints.add(manifest.base_model_fingerprint)
    assert (workdir / f"seed_{seed}" / "lang_pt_steps3" / "adapter").exists()
  assert len(fingerprints) == len(SEEDS)


def _constant_effect(value, n_seeds=2, n_targets=1):
  return paired_bootstrap.paired_effect(
      np.full((n_seeds, n_targets, 4), value), num_samples=20).to_dict()


def test_ablation_table_says_which_ablation_flips_the_sign():
  targets = ("pt",)
  main = {"pt": _constant_effect(2.0), miniature.AVG: _constant_effect(2.0)}
  ablations = {
      "space=delta": {"pt": _constant_effect(1.0),
                      miniature.AVG: _constant_effect(1.0)},
      "language_steps=1000": {"pt": _constant_effect(-0.5),
                              miniature.AVG: _constant_effect(-0.5)},
      "lambdas=0.3": {"pt": _constant_effect(0.0),
                      miniature.AVG: _constant_effect(0.0)}}
  pcfg = miniature.pipeline.PipelineConfig(targets=targets)
  table = miniature.ablation_table(main, ablations, targets, "rouge2", pcfg)
  rows = {line.split(" | ")[0][2:]: line for line in table.splitlines()
          if line.startswith("| ")}
  assert rows["space=delta"].endswith("| same |")
  assert rows["language_steps=1000"].endswith(
      "| flipped; interval worse |")
  assert rows["lambdas=0.3"].endswith(
      "| zero on one side; interval inconclusive |")
  assert "+2.0 [+2.0, +2.0] ▲" in rows[next(r for r in rows
                                              if r.startswith("main"))]


def test_paired_verdict_is_worded_from_the_interval():
  method = miniature.METHOD
  effects = {"rouge2": {method: {miniature.AVG: _constant_effect(0.0)}},
             "language_fidelity": {method: {
                 miniature.AVG: _constant_effect(5.0)}}}
  rouge, fidelity = miniature.paired_verdicts(effects)
  assert rouge.startswith(f"ROUGE-2 (spm): {method} is not "
                          "distinguishable from the baseline")
  assert fidelity.startswith(f"target-language fidelity (%): {method} "
                             "beats the baseline")
