"""The learning-rate miniature: rate choice and verdict, and a reduced run.

Fast tests check how a rate is chosen and how the verdict counts seeds,
including that a worse tuned rate is reported as such. The reduced run
(slow) executes `python -m lta.cli.lr_miniature` with the experiment's gin
file, a few steps, two seeds and two rates per method, and checks that the
outputs are well formed and that the table's numbers are those of the
per-run scores. Whether a tuned rate cuts wrong-language output is
reported, not asserted.
"""

import json

import numpy as np
import pytest

from lta import errors
from lta.jobs import lr_miniature as lrm
from tests import cli_run

TARGETS = ["pt", "uk"]


def _run(wrong, rouge, val_rouge):
  """One run's scores: the same numbers on both targets."""
  scores = {lrm.TARGETS: TARGETS}
  for lang in ["en"] + TARGETS:
    scores[lang] = {
        "validation": {"rouge2": val_rouge, "wrong_language": wrong},
        "test": {"rouge2": rouge, "wrong_language": wrong}}
  return scores


def _study(**kwargs):
  return lrm.LearningRateStudyConfig(
      seeds=(0, 1), full_learning_rates=(1e-4, 1e-3),
      full_reference_rate=1e-3, lora_learning_rates=(1e-2, 1e-1),
      lora_reference_rate=1e-2, **kwargs)


def _per_seed(full_small, full_ref):
  """seed -> runs; arguments are per-seed (wrong, rouge, val) tuples."""
  return {str(s): {"full_lr0.0001": _run(*full_small[s]),
                   "full_lr0.001": _run(*full_ref[s]),
                   "lora_lr0.01": _run(0, 10, 10),
                   "lora_lr0.1": _run(0, 5, 5)} for s in (0, 1)}


def test_tuned_rate_that_cuts_wrong_language_in_every_seed():
  per_seed = _per_seed(full_small=[(10, 20, 30), (20, 22, 32)],
                       full_ref=[(40, 15, 20), (30, 16, 21)])
  v = lrm.verdict(_study(), per_seed, "full", "rouge2", "en")
  assert v["chosen_rate"] == 1e-4 and v["outcome"] == "cuts"
  assert v["delta_wrong_language"]["mean"] == pytest.approx(-20.0)
  assert v["delta_score"]["mean"] == pytest.approx(5.5)
  assert v["seeds_lower"] == 2 and "in every seed" in v["sentence"]
  lora = lrm.verdict(_study(), per_seed, "lora", "rouge2", "en")
  assert lora["outcome"] == "reference_chosen"


def test_a_worse_tuned_rate_is_reported_as_not_cutting():
  # Chosen on validation, but more wrong-language output on test.
  per_seed = _per_seed(full_small=[(50, 20, 30), (35, 22, 32)],
                       full_ref=[(40, 15, 20), (30, 16, 21)])
  v = lrm.verdict(_study(), per_seed, "full", "rouge2", "en")
  assert v["chosen_rate"] == 1e-4
  assert v["outcome"] == "does_not_cut"
  assert v["delta_wrong_language"]["mean"] == pytest.approx(7.5)
  assert v["seeds_lower"] == 0 and "does not cut" in v["sentence"]


def test_rate_is_chosen_on_the_configured_validation_set():
  per_seed = _per_seed(full_small=[(10, 20, 30), (20, 22, 32)],
                       full_ref=[(40, 15, 20), (30, 16, 21)])
  # On the source's validation set the reference wins instead.
  for seed in per_seed.values():
    seed["full_lr0.001"]["en"]["validation"]["rouge2"] = 99
  assert lrm.choose_rate(_study(), per_seed, "full", "rouge2", "en") == 1e-4
  assert lrm.choose_rate(_study(select_on="source"), per_seed, "full",
                         "rouge2", "en") == 1e-3


def test_a_partial_run_pairs_seeds_and_says_what_is_missing():
  per_seed = _per_seed(full_small=[(10, 20, 30), (20, 22, 32)],
                       full_ref=[(40, 15, 20), (30, 16, 21)])
  del per_seed["1"]["full_lr0.001"]  # seed 1's reference run not scored yet
  v = lrm.verdict(_study(), per_seed, "full", "rouge2", "en")
  assert v["n_seeds"] == 1
  assert v["delta_wrong_language"]["mean"] == pytest.approx(-30.0)
  del per_seed["0"]["full_lr0.001"]
  v = lrm.verdict(_study(), per_seed, "full", "rouge2", "en")
  assert v["outcome"] == "not_measured" and v["n_seeds"] == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"full_reference_rate": 3e-3}, "full_reference_rate=0.003 is not among"),
    ({"select_on": "target"}, "did you mean 'targets'"),
    ({"seeds": (1, 1)}, "seeds must be distinct"),
])
def test_bad_config_is_one_line_naming_the_field(kwargs, message):
  base = dict(seeds=(0, 1), full_learning_rates=(1e-4, 1e-3),
              full_reference_rate=1e-3)
  with pytest.raises(errors.ConfigError, match=message):
    lrm.LearningRateStudyConfig(**{**base, **kwargs})


SEEDS = (3, 7)
FULL_RATES = (1e-3, 1e-2)
LORA_RATES = (1e-2, 1e-1)
EXAMPLES = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  out = tmp_path_factory.mktemp("lr_miniature")
  args = ["--gin_file=experiments/lr_miniature.gin",
          f'--gin.LearningRateStudyConfig.workdir="{out}"',
          f"--gin.LearningRateStudyConfig.seeds={SEEDS}",
          f"--gin.LearningRateStudyConfig.full_learning_rates={FULL_RATES}",
          "--gin.LearningRateStudyConfig.full_reference_rate=1e-2",
          f"--gin.LearningRateStudyConfig.lora_learning_rates={LORA_RATES}",
          "--gin.LearningRateStudyConfig.batch_size=4",
          '--gin.PipelineConfig.world_preset="tiny"',
          "--gin.VOCAB_SIZE=512",
          "--gin.PipelineConfig.pretrain_steps=4",
          "--gin.PipelineConfig.task_steps=3",
          "--gin.PipelineConfig.batch_size=4",
          f"--gin.PipelineConfig.eval_examples={EXAMPLES}"]
  proc = cli_run.run_module("lta.cli.lr_miniature", args, timeout=1800)
  assert "**Verdict**" in proc.stdout
  return out


@pytest.mark.slow
def test_writes_table_plot_and_json(workdir):
  results = workdir / "results"
  table = (results / "table.md").read_text(encoding="utf-8")
  assert (results / "lr_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  report = json.loads((results / "per_seed.json").read_text())
  assert "lta lr-miniature" in report["command"] and report["seconds"] > 0
  assert list(report["per_seed"]) == [str(s) for s in SEEDS]
  for method, rates in (("full", FULL_RATES), ("lora", LORA_RATES)):
    label = lrm.METHODS[method]
    v = report["verdicts"][method]
    assert v["sentence"] in table and v["chosen_rate"] in rates
    assert v["n_seeds"] == len(SEEDS)
    for rate in rates:
      assert f"| {label} | {rate:g}" in table
  assert "(chosen" in table and "reference)" in table


@pytest.mark.slow
def test_numbers_are_in_range_and_the_table_is_their_mean(workdir):
  report = json.loads((workdir / "results" / "per_seed.json").read_text())
  for seed in SEEDS:
    runs = report["per_seed"][str(seed)]
    assert len(runs) == len(FULL_RATES) + len(LORA_RATES)
    for name, scores in runs.items():
      own = json.loads((workdir / f"seed_{seed}" / name / "scores" /
                        "scores.json").read_text())
      assert scores == own
      for lang in ["en"] + TARGETS:
        for split in ("validation", "test"):
          for metric in ("rouge2", "exact_match", "wrong_language",
                         "language_fidelity"):
            assert 0 <= scores[lang][split][metric] <= 100
          s = scores[lang][split]
          assert s["wrong_language"] + s["language_fidelity"] <= 100 + 1e-9
  table = (workdir / "results" / "table.md").read_text(encoding="utf-8")
  wrong = [np.mean([report["per_seed"][str(s)]["full_lr0.001"][t]["test"]
                    ["wrong_language"] for t in TARGETS]) for s in SEEDS]
  row = next(l for l in table.splitlines() if l.startswith(
      f"| {lrm.METHODS['full']} | 0.001"))
  cell = row.split("|")[3].strip()
  assert cell == (f"{np.mean(wrong):.1f} ± {np.std(wrong, ddof=1):.1f}")
