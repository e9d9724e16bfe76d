"""The main job end to end on CPU (train -> compose -> merge -> decode -> score).

Runs `python -m lta.main.pipeline` in a subprocess (it binds global gin and
seqio state) with few steps, then checks every file it writes.
"""

import csv
import json

import pytest

from lta import metrics
from tests import cli_run
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.peft import adapter_io

METHODS = ("Task vector only (baseline)", "Language and task (add)",
           "Language and task (add and subtract)")
EXAMPLES = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  out = tmp_path_factory.mktemp("pipeline")
  proc = cli_run.run_module(
      "lta.main.pipeline", cli_run.tiny_pipeline_flags(out, (0.5, 0.9),
                                                       EXAMPLES))
  assert "[5/5] results" in proc.stdout
  assert "| Method | Pt | Uk | Avg |" in proc.stdout
  return out


def test_writes_every_result_file(workdir):
  results = workdir / "results"
  for name in ("predictions.jsonl", "scores.csv", "scores.json", "table.md",
               "lambda_sweep.png", "lambda_sweep.json"):
    assert (results / name).stat().st_size > 0, name


def test_predictions_and_scores_agree(workdir):
  results = workdir / "results"
  preds = [json.loads(l) for l in open(results / "predictions.jsonl")]
  assert len(preds) == len(METHODS) * 2 * EXAMPLES
  scores = json.load(open(results / "scores.json"))
  spm = str(workdir / "spm" / "spm.model")
  for method in METHODS:
    for lang in ("pt", "uk"):
      rows = [p for p in preds if p["method"] == method and
              p["language"] == lang]
      assert len(rows) == EXAMPLES
      want = metrics.rouge_spm([r["target"] for r in rows],
                               [r["prediction"] for r in rows], spm)
      got = scores[method][lang]
      assert got["rouge2"] == pytest.approx(want["rouge2"], abs=1e-6)
      assert 0.0 <= got["language_fidelity"] <= 100.0
      assert got["lambda"] in ((1.0,) if "only" in method else (0.5, 0.9))
  rows = list(csv.DictReader(open(results / "scores.csv")))
  assert {r["method"] for r in rows} == set(METHODS)


def test_adapters_are_adapter_only_and_bound_to_the_base(workdir):
  config, params = hf.load_hf_checkpoint(str(workdir / "base" / "model"))
  base_fp = fingerprint.base_model_fingerprint(config, params)
  for name in ("task_en", "lang_en", "lang_pt", "lang_uk"):
    tree, manifest = adapter_io.load_adapter(str(workdir / name / "adapter"))
    assert manifest.base_model_fingerprint == base_fp
    leaves = set(manifest.shapes)
    assert leaves and all(p.endswith(("lora_a", "lora_b")) for p in leaves)
  assert manifest.task == "mc4_prefix_lm" and manifest.language == "uk"


def test_lta_eval_scores_a_composition_with_a_lambda_sweep(workdir, tmp_path):
  out = tmp_path / "eval"
  tasks = {"en": str(workdir / "task_en" / "adapter")}
  langs = {lang: str(workdir / f"lang_{lang}" / "adapter")
           for lang in ("en", "pt", "uk")}
  args = ["--gin_file=runs/eval.gin",
          f'--gin.run_eval.output_dir="{out}"',
          f'--gin.run_eval.base_checkpoint="{workdir / "base" / "model"}"',
          "--gin.run_eval.tasks=['xlsum.pt', 'xlsum.uk']",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 128, 'targets': 16}",
          '--gin.run_eval.composition="lang_task_add_subtract"',
          "--gin.run_eval.sources=['en']",
          f"--gin.run_eval.task_vectors={tasks!r}",
          f"--gin.run_eval.language_vectors={langs!r}",
          "--gin.LAMBDA=[0.5, 0.9]",
          f"--gin.run_eval.max_examples={EXAMPLES}",
          f'--gin.run_eval.tfds_data_dir="{workdir / "tfds"}"',
          f'--gin.lta.vocab.get_vocabulary.path="{workdir / "spm" / "spm.model"}"']
  cli_run.run_module("lta.main.eval", args, timeout=600)
  for name in ("predictions.jsonl", "scores.csv", "scores.json", "table.md",
               "lambda_sweep.png", "relative_improvement.png"):
    assert (out / name).stat().st_size > 0, name
  preds = [json.loads(l) for l in open(out / "predictions.jsonl")]
  scores = json.load(open(out / "scores.json"))
  assert set(scores) == {"Task vector only (baseline)",
                         "lang_task_add_subtract"}
  spm = str(workdir / "spm" / "spm.model")
  for method, by_lang in scores.items():
    for lang in ("pt", "uk"):
      rows = [p for p in preds if p["method"] == method and
              p["language"] == lang]
      assert len(rows) == EXAMPLES
      want = metrics.rouge_spm([r["target"] for r in rows],
                               [r["prediction"] for r in rows], spm)
      assert by_lang[lang]["rouge2"] == pytest.approx(want["rouge2"],
                                                      abs=1e-6)
      assert by_lang[lang]["rouge2_ci_low"] <= by_lang[lang]["rouge2"] <= \
          by_lang[lang]["rouge2_ci_high"]
  assert scores["lang_task_add_subtract"]["pt"]["lambda"] in (0.5, 0.9)
  table = open(out / "table.md").read()
  assert "| Method | Pt | Uk | Avg |" in table
