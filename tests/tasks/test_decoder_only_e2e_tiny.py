"""Decoder-only train -> compose -> eval in-process, on the task fixtures.

A random one-layer decoder-only base (an HF checkpoint), a task vector on
xlsum_prompt.en and a language vector on mc4_decoder_prefix_lm.en trained
by `lta train`'s loop, then composed and scored by `lta sweep` over λ,
whose jobs run the `lta eval` command (subprocesses) exactly as on mT5. The same
run through `lta pipeline`, with pre-training, is tests/test_decoder_only_e2e.py
(slow).
"""

import csv
import json
import os

import jax
import numpy as np

from lta.adapters.config import AdapterConfig
from lta.checkpoints import base_model
from lta.cli import sweep as sweep_cli
from lta.models import families
from lta.models.decoder.config import DecoderConfig
from lta.train import loop
from lta.train import optimizers

# Batches of 8: one row per fake CPU device (tests/conftest.py).
LENGTHS = {"inputs": 160, "targets": 32}
CONFIG = DecoderConfig(vocab_size=1000, hidden_size=16, intermediate_size=32,
                       num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8,
                       tie_word_embeddings=False, name="decoder-e2e")


def _train(tmp_path, name, task, base, steps):
  result = loop.train(
      model_dir=str(tmp_path / name), mixture_or_task_name=task,
      task_feature_lengths=LENGTHS, train_steps=steps,
      initial_checkpoint_path=base, mixture_or_task_module="lta_tasks",
      adapter=AdapterConfig(kind="lora", rank=2, alpha=2.0), batch_size=8,
      optimizer=optimizers.make_optimizer(name="adamw"), log_period=steps,
      checkpoint_period=steps, async_checkpointing=False)
  assert result.step == steps and result.adapter_dir
  return result.adapter_dir


def test_train_compose_eval_on_a_decoder_only_base(tfds_dir, tiny_spm_path,
                                                   tmp_path):
  model = families.build_model(CONFIG)
  params = jax.jit(model.init_unboxed)(jax.random.PRNGKey(0))["params"]
  base = str(tmp_path / "base")
  base_model.save_base_model(params, CONFIG, base)
  task_en = _train(tmp_path, "task_en", "xlsum_prompt.en", base, 2)
  lang_en = _train(tmp_path, "lang_en", "mc4_decoder_prefix_lm.en", base, 1)
  # `lta sweep` over λ, each job an `lta eval` subprocess, as on mT5
  # (tests/launch/test_sweep_e2e.py, slow). One λ and the baseline in its
  # job: one subprocess, for the default tier's budget.
  sweep_dir = tmp_path / "sweep"
  command = [
      "lta", "eval", "--gin_file=runs/eval.gin",
      f'--gin.run_eval.base_checkpoint="{base}"',
      "--gin.run_eval.tasks=['xlsum_prompt.en']",
      f"--gin.TASK_FEATURE_LENGTHS={LENGTHS!r}",
      '--gin.run_eval.composition="lang_task_add"',
      "--gin.run_eval.sources=['en']", "--gin.run_eval.split='validation'",
      f"--gin.run_eval.task_vectors={ {'en': task_en}!r}",
      f"--gin.run_eval.language_vectors={ {'en': lang_en}!r}",
      "--gin.run_eval.max_examples=2", "--gin.run_eval.batch_size=2",
      f"--tfds_data_dir={tfds_dir}",
      f'--gin.lta.vocab.get_vocabulary.path="{tiny_spm_path}"']
  assert sweep_cli.main([f"--workdir={sweep_dir}", "--grid=LAMBDA=[0.5]",
                         "--eval_baseline=every_job", "--", *command]) == 0
  (job,) = json.load(open(sweep_dir / "jobs.json"))
  records = json.load(open(os.path.join(job["output_dir"], "results.json")
                           ))["records"]
  assert {r["method"] for r in records} == {"task_only", "lang_task_add"}
  for r in records:  # the fixture's validation split has one article
    assert r["task"] == "xlsum_prompt.en" and r["num_examples"] == 1
    assert np.isfinite(r["scores"]["rouge2"])
  (composed,) = [r for r in records if r["method"] == "lang_task_add"]
  assert composed["lam"] == 0.5
  rows = list(csv.DictReader(open(sweep_dir / "sweep.csv")))
  assert {(r["job"], r["LAMBDA"]) for r in rows} == {("000_LAMBDA=0.5",
                                                      "0.5")}
  assert len(rows) == 2  # the baseline's row and the composition's
