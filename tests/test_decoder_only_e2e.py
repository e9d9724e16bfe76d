"""A decoder-only base end to end: pre-train -> train -> compose -> eval.

Runs `lta pipeline` with experiments/decoder_only.gin (the switch users
run) in a subprocess, on the tiny synthetic world with a one-layer model
and a step or two per stage, then checks what each stage wrote and decodes
the task vector again through `lta eval`'s scorer. Slow (a subprocess
pipeline: minutes on 2 cores); tests/tasks/test_decoder_only_e2e_tiny.py
runs train -> compose -> eval in-process in the default tier.
"""

import json

import numpy as np
import pytest
import seqio

from lta.adapters import adapter_io
from lta.adapters.manifest import Adapter
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.data import decoder_only
from lta.eval import composed
from lta.eval import methods
from lta.models.contract import DecodingConfig
from lta.models.decoder.config import DecoderConfig
import lta_tasks  # pylint: disable=unused-import  (registers the tasks)
from tests import cli_run

LENGTHS = {"inputs": 48, "targets": 8}
EXAMPLES = 2
GIN_FILES = ("models/tiny.gin", "peft/lora_r4.gin", "runs/pipeline.gin",
             "experiments/decoder_only.gin")


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  out = tmp_path_factory.mktemp("decoder_pipeline")
  flags = [f"--gin_file={f}" for f in GIN_FILES] + [
      f'--gin.PipelineConfig.workdir="{out}"',
      '--gin.PipelineConfig.world_preset="tiny"',
      "--gin.PipelineConfig.world_languages=('en', 'ru', 'pt')",
      "--gin.PipelineConfig.targets=('pt',)",
      "--gin.PipelineConfig.pretrain_steps=2",
      "--gin.PipelineConfig.task_steps=2",
      "--gin.PipelineConfig.language_steps=1",
      "--gin.PipelineConfig.batch_size=2",
      "--gin.PipelineConfig.lambdas=(0.5,)",
      f"--gin.PipelineConfig.eval_examples={EXAMPLES}",
      f"--gin.PipelineConfig.input_length={LENGTHS['inputs']}",
      f"--gin.PipelineConfig.target_length={LENGTHS['targets']}",
      "--gin.DecoderConfig.num_layers=1", "--gin.DecoderConfig.hidden_size=32",
      "--gin.DecoderConfig.head_dim=8"]
  cli_run.run_module("lta.cli.pipeline", flags)
  return out


def _adapter(workdir, name):
  tree, manifest = adapter_io.load_adapter(str(workdir / name / "adapter"))
  return Adapter(tree, manifest, name=name)


def test_base_is_a_decoder_only_model_pretrained_here(workdir):
  config, params = base_model.load_base_model(str(workdir / "base" / "model"))
  assert isinstance(config, DecoderConfig)
  assert (config.family, config.num_layers, config.hidden_size) == (
      "llama", 1, 32)
  history = json.load(open(workdir / "base" / "history.json"))
  assert history["steps"] == 2
  base_fp = fingerprint.base_model_fingerprint(config, params)
  for name, task in (("task_en", "xlsum_prompt"),
                     ("lang_en", "mc4_decoder_prefix_lm"),
                     ("lang_pt", "mc4_decoder_prefix_lm")):
    adapter = _adapter(workdir, name)
    assert adapter.manifest.base_model_fingerprint == base_fp
    assert adapter.manifest.task == task
    # LoRA's B starts at zero: trained vectors have moved it.
    lora_b = adapter.tree["decoder"]["layers_0"]["attention"]["query"][
        "lora_b"]
    assert np.abs(lora_b).max() > 0


def test_every_composition_is_scored_on_the_prompt_task(workdir):
  records = json.load(open(workdir / "results" / "results.json"))["records"]
  scored = {(r["method"], r["task"]) for r in records if r["split"] == "test"}
  assert scored == {(name, "xlsum_prompt.pt") for name in (
      "task_only", "lang_task_add", "lang_task_add_subtract")}
  for r in records:
    if methods.get(r["method"]).uses_lambda:
      assert r["lam"] == 0.5
  lines = [json.loads(l) for l in open(workdir / "results" /
                                        "predictions.jsonl")]
  prompt = decoder_only.PROMPTS["xlsum"].text
  head, tail = prompt.split("{text}")
  assert len(lines) == 3 * EXAMPLES
  for line in lines:
    assert line["inputs"].startswith(head) and line["inputs"].endswith(tail)


def test_lta_eval_decodes_what_the_pipeline_recorded(workdir):
  lines = [json.loads(l) for l in open(workdir / "results" /
                                        "predictions.jsonl")]
  want = [l["prediction"] for l in lines
          if l["method"] == methods.label("task_only")]
  seqio.set_tfds_data_dir_override(str(workdir / "tfds"))
  try:
    scorer = composed.MergedScorer(
        str(workdir / "base" / "model"), LENGTHS, 2,
        DecodingConfig(max_decode_length=LENGTHS["targets"]), EXAMPLES,
        log=None, vocabulary=str(workdir / "spm" / "spm.model"))
    result = scorer.score(_adapter(workdir, "task_en"), "xlsum_prompt.pt",
                          "test")
  finally:
    seqio.set_tfds_data_dir_override(None)
  assert [r["prediction"] for r in result.examples] == want
