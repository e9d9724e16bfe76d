"""The miniature reproduction: aggregation and verdict, and a reduced run.

The reduced run (slow) executes `python -m lta.cli.miniature` with the
experiment's gin file and a few steps, two seeds, then checks that every
output is well formed and that the aggregates are those of the per-seed
numbers. Whether the method's effect appears is reported, not asserted.
"""

import json

import numpy as np
import pytest

from lta.eval import methods
from lta.jobs import miniature
from tests import cli_run

TARGETS = ("pt", "uk")
METHOD_NAMES = ("task_only", "lang_task_add", "lang_task_add_subtract",
                "task_only_add_related", "lang_task_add_subtract_related")
METHODS = tuple(methods.label(name) for name in METHOD_NAMES)
METRICS = ("rouge2", "exact_match", "language_fidelity")
SEEDS = (3, 7)
LAMBDAS = (0.5, 0.9)
EXAMPLES = 4


def _per_seed(values):
  """values[seed][method] = (pt, uk) rouge2 -> the per_seed layout."""
  return {seed: {"scores": {m: {t: {"rouge2": v}
                                for t, v in zip(TARGETS, by_method[m])}
                            for m in by_method}}
          for seed, by_method in values.items()}


def test_stats_use_sample_std_and_skip_nan():
  s = miniature.stats([1.0, 2.0, 4.0, float("nan")])
  assert s["mean"] == pytest.approx(7 / 3)
  assert s["std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
  assert (s["min"], s["max"], s["n"]) == (1.0, 4.0, 3)
  assert miniature.stats([5.0])["std"] == 0.0
  assert miniature.stats([])["n"] == 0


def test_verdict_counts_targets_pairs_and_seeds():
  base, method = miniature.BASELINE, miniature.METHOD
  per_seed = _per_seed({
      "0": {base: (10.0, 20.0), method: (12.0, 19.0)},
      "1": {base: (10.0, 20.0), method: (13.0, 21.0)}})
  v = miniature.verdict(per_seed, TARGETS, "rouge2")
  # Δ: seed 0 (+2, -1) avg +0.5; seed 1 (+3, +1) avg +2.
  assert v["outcome"] == "beats"
  # uk: Δ -1 and +1, a mean of 0: neither better nor worse.
  assert (v["targets_better"], v["targets_worse"]) == (["pt"], [])
  assert v["delta_per_target"]["uk"]["mean"] == pytest.approx(0.0)
  assert v["delta_avg"]["mean"] == pytest.approx(1.25)
  assert v["delta_avg"]["std"] == pytest.approx(np.std([0.5, 2.0], ddof=1))
  assert (v["pairs_better"], v["n_pairs"], v["seeds_better"]) == (3, 4, 2)
  assert "mean Δ = +1.25" in v["sentence"]


def test_verdict_reports_a_negative_result_as_negative():
  base, method = miniature.BASELINE, miniature.METHOD
  per_seed = _per_seed({
      "0": {base: (10.0, 20.0), method: (9.0, 20.0)},
      "1": {base: (11.0, 20.0), method: (12.0, 18.0)}})
  v = miniature.verdict(per_seed, TARGETS, "rouge2")
  assert v["outcome"] == "does_not_beat"
  assert v["targets_worse"] == ["uk"]
  assert v["sentence"].startswith(
      f"ROUGE-2 (spm): {method} does not beat the baseline.")
  mixed = _per_seed({
      "0": {base: (10.0, 20.0), method: (14.0, 20.0)},
      "1": {base: (10.0, 20.0), method: (9.0, 20.0)}})
  assert miniature.verdict(mixed, TARGETS, "rouge2")["outcome"] == (
      "beats_on_average")


def test_config_rejects_repeated_seeds():
  with pytest.raises(ValueError, match="seeds"):
    miniature.MiniatureConfig(seeds=(1, 1))


def _reduced_args(out, gin_files=("experiments/miniature.gin",)):
  return [f"--gin_file={f}" for f in gin_files] + [
      f'--gin.MiniatureConfig.workdir="{out}"',
      f"--gin.MiniatureConfig.seeds={SEEDS}",
      '--gin.PipelineConfig.world_preset="tiny"',
      "--gin.PipelineConfig.pretrain_steps=4",
      "--gin.PipelineConfig.task_steps=3",
      "--gin.PipelineConfig.language_steps=2",
      "--gin.PipelineConfig.eval_steps=1",
      "--gin.PipelineConfig.batch_size=4",
      f"--gin.PipelineConfig.lambdas={LAMBDAS}",
      f"--gin.PipelineConfig.eval_examples={EXAMPLES}"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  out = tmp_path_factory.mktemp("miniature")
  proc = cli_run.run_module("lta.cli.miniature", _reduced_args(out),
                            timeout=1800)
  assert "**Verdict**" in proc.stdout
  return out


@pytest.mark.slow
def test_writes_table_plots_and_json(workdir):
  results = workdir / "results"
  for name in ("table.md", "per_seed.json"):
    assert (results / name).stat().st_size > 0, name
  for name in ("miniature.png", "lambda_sweep.png"):
    assert (results / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
  table = (results / "table.md").read_text(encoding="utf-8")
  assert "| Method | Pt | Uk | Avg |" in table
  for method in METHODS:
    assert table.count(f"| {method} |") >= len(METRICS), method
  report = json.loads((results / "per_seed.json").read_text())
  assert report["seeds"] == list(SEEDS)
  assert "lta miniature" in report["command"] and report["seconds"] > 0
  assert tuple(report["methods"]) == METHODS
  for v in report["verdicts"]:
    assert v["sentence"] in table
    assert v["n_targets"] == 2 and v["n_pairs"] == 4 and v["n_seeds"] == 2


@pytest.mark.slow
def test_per_seed_numbers_are_in_range_and_match_each_run(workdir):
  report = json.loads((workdir / "results" / "per_seed.json").read_text())
  for seed in SEEDS:
    own = json.loads((workdir / f"seed_{seed}" / "results" /
                      "scores.json").read_text())
    scores = report["per_seed"][str(seed)]["scores"]
    assert scores == own
    for name, method in zip(METHOD_NAMES, METHODS):
      for target in TARGETS:
        s = scores[method][target]
        for metric in METRICS:
          assert 0.0 <= s[metric] <= 100.0, (seed, method, target, metric)
        if methods.get(name).uses_lambda:
          assert s["lambda"] in LAMBDAS
        else:  # nothing to choose: no λ is reported
          assert "lambda" not in s
    sanity = report["per_seed"][str(seed)]["sanity"]
    assert set(sanity["task_vector_on_source"]) == {"en", "ru"}
    assert sanity["related_sources"] == {"pt": ["en", "ru"],
                                         "uk": ["ru", "en"]}


@pytest.mark.slow
def test_aggregates_are_those_of_the_seeds(workdir):
  report = json.loads((workdir / "results" / "per_seed.json").read_text())
  per_seed = report["per_seed"]
  for method in METHODS:
    for metric in METRICS:
      rows = np.array([[per_seed[str(s)]["scores"][method][t][metric]
                        for t in TARGETS] for s in SEEDS])
      for j, target in enumerate(TARGETS):
        got = report["summary"][method][target][metric]
        assert got["mean"] == pytest.approx(rows[:, j].mean())
        assert got["std"] == pytest.approx(rows[:, j].std(ddof=1))
        assert got["min"] == pytest.approx(rows[:, j].min())
        assert got["n"] == len(SEEDS)
      avg = report["summary"][method]["avg"][metric]
      assert avg["mean"] == pytest.approx(rows.mean())
  for v in report["verdicts"]:
    delta = [np.mean([per_seed[str(s)]["scores"][v["method"]][t][v["metric"]]
                      - per_seed[str(s)]["scores"][v["baseline"]][t][
                          v["metric"]] for t in TARGETS]) for s in SEEDS]
    assert v["delta_avg"]["mean"] == pytest.approx(np.mean(delta))


@pytest.mark.slow
def test_seeds_share_the_base_but_not_the_adapters(workdir):
  from lta.adapters import adapter_io  # pylint: disable=g-import-not-at-top
  trees, fingerprints = [], set()
  for seed in SEEDS:
    tree, manifest = adapter_io.load_adapter(
        str(workdir / f"seed_{seed}" / "task_en" / "adapter"))
    trees.append(tree)
    fingerprints.add(manifest.base_model_fingerprint)
  assert len(fingerprints) == 1
  assert not (workdir / f"seed_{SEEDS[0]}" / "base").exists()
  leaves = [np.concatenate([np.ravel(x) for x in _leaves(t)]) for t in trees]
  assert not np.allclose(leaves[0], leaves[1])


def _leaves(tree):
  if isinstance(tree, dict):
    for k in sorted(tree):
      yield from _leaves(tree[k])
  else:
    yield np.asarray(tree)


@pytest.mark.slow
def test_the_decoder_only_switch_runs_the_miniature(tmp_path):
  """experiments/decoder_only.gin after the miniature's file: the same
  table from a decoder-only base and the prompt tasks (the switch itself is
  checked in the default tier: tests/test_decoder_only_gin_switch.py)."""
  from lta.adapters import adapter_io  # pylint: disable=g-import-not-at-top
  files = ("experiments/miniature.gin", "experiments/decoder_only.gin")
  proc = cli_run.run_module(
      "lta.cli.miniature", _reduced_args(tmp_path, files) + [
          "--gin.DecoderConfig.num_layers=1"], timeout=1800)
  assert "**Verdict**" in proc.stdout
  table = (tmp_path / "results" / "table.md").read_text(encoding="utf-8")
  for method in METHODS:
    assert table.count(f"| {method} |") >= len(METRICS), method
  for seed in SEEDS:
    _, manifest = adapter_io.load_adapter(
        str(tmp_path / f"seed_{seed}" / "task_en" / "adapter"))
    assert manifest.base_model_name == "decoder-tiny"
    assert (manifest.task, manifest.language) == ("xlsum_prompt", "en")
