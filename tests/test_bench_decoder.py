"""bench/bench_decoder_train.py on a 1-layer Qwen2: the plumbing, not speed.

The real harness end to end: transformers makes the random weights, lta
imports them, an lta worker and an HF peft worker run in fair rounds, and
the report pairs them. Both sides must compute the same first-step loss on
the same weights and tokens, and train the same LoRA parameters. Needs the
HF peer (`make hf-env`), so it is slow-marked: `make test-all` runs it
(CI's `make test` installs no torch). Timings are not asserted.
"""

import json
import os
import sys

import pytest

from tests import cli_run

sys.path.insert(0, os.path.join(cli_run.REPO, "bench"))
import bench_decoder_train  # pylint: disable=g-import-not-at-top,wrong-import-position

RANK, LAYERS, STEPS = 2, 1, 2


@pytest.mark.slow
@pytest.mark.usefixtures("clean_gin")
def test_lta_and_hf_peft_train_the_same_lora_on_the_same_weights(
    tmp_path, capsys):
  out = tmp_path / "train.json"
  rc = bench_decoder_train.main([
      "--model_gin=gin/models/qwen2_tiny.gin",
      f"--gin_binding=DecoderConfig.num_layers={LAYERS}",
      "--gin_binding=DecoderConfig.layer_types=('full_attention',)",
      "--batch=2", "--length=8", f"--rank={RANK}", f"--steps={STEPS}",
      "--warmup=1", "--rounds=1", "--max_load=1000", "--threads=1",
      f"--json_out={out}"])
  stdout = capsys.readouterr().out
  assert rc == 0, stdout
  record = json.loads(out.read_text())

  # The same weights and tokens: the base model's loss, on both sides.
  losses = record["first_loss"]
  assert losses["lta_lora"] == pytest.approx(losses["hf_lora"], rel=1e-5)
  assert record["first_loss_rel_diff"] < 1e-5
  # The same LoRA: r x (in + out) on q (32->32), k, v (32->16), o (32->32).
  model = record["model"]
  hidden, kv = model["hidden_size"], model["num_kv_heads"] * model["head_dim"]
  want = LAYERS * RANK * (2 * (hidden + hidden) + 2 * (hidden + kv))
  summary = record["summary"]
  assert summary["lta_lora"]["trainable"] == want
  assert summary["hf_lora"]["trainable"] == want

  # Measured in one round, both sides, each STEPS timed steps; paired.
  (only,) = record["rounds"]
  assert only["order"] == ["lta_lora", "hf_lora"]
  for side in ("lta_lora", "hf_lora"):
    result = only["results"][side]
    assert len(result["times"]) == STEPS and min(result["times"]) > 0
    assert result["steps_peak_rss_mb"] >= result["setup_rss_mb"] > 0
  assert summary["paired_speed_lta_over_hf"] == pytest.approx([
      only["results"]["hf_lora"]["median_s"] /
      only["results"]["lta_lora"]["median_s"]])
  assert summary["lta_lora"]["xla_total_mb"] > 0
  assert "threads" in record["settings"] and only["load_before"]

  # Reported: the table, the paired ratios and the loss check.
  assert "| lta LoRA | " in stdout and "| HF peft LoRA | " in stdout
  assert "lta LoRA / HF LoRA tokens/s: " in stdout
  assert "first-step loss (base model, same weights and tokens)" in stdout


@pytest.mark.slow
@pytest.mark.usefixtures("clean_gin")
def test_decode_bench_runs_lta_and_hf_generate_on_the_same_prompts(
    tmp_path, capsys):
  import bench_decoder_decode  # pylint: disable=g-import-not-at-top
  out = tmp_path / "decode.json"
  rc = bench_decoder_decode.main([
      "--model_gin=gin/models/qwen2_tiny.gin", "--batch=3", "--prompt=8",
      "--decode=6", "--runs=2", "--rounds=2", "--max_load=1000",
      "--threads=1", "--variants=base,merged,unmerged,hf",
      f"--json_out={out}"])
  stdout = capsys.readouterr().out
  assert rc == 0, stdout
  record = json.loads(out.read_text())
  assert record["lta_base_ids_equal_hf"]
  assert [r["order"] for r in record["rounds"]] == [["lta", "hf"],
                                                     ["hf", "lta"]]
  assert [row["variant"] for row in record["rows"]] == [
      "base", "merged", "unmerged", "hf"]
  assert "merged vs unmerged ids: 100.0% of tokens, 3/3 rows" in stdout
  assert "lta base prompt prefill alone" in stdout
