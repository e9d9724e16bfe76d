"""bench/profile_train_step.py: one traced step of a bench_train.py
configuration, its operations and its page faults, on a tiny model."""

import os
import re
import subprocess
import sys

from tests import cli_run

TINY = ["--vocab=512", "--layers=1", "--d_model=32", "--d_ff=64",
        "--heads=2", "--d_kv=16", "--batch=2", "--inputs=16", "--targets=16"]


def test_profile_lists_operations_under_the_configurations_settings(
    tmp_path):
  hlo = tmp_path / "step.hlo"
  proc = subprocess.run(
      [sys.executable,
       os.path.join(cli_run.REPO, "bench", "profile_train_step.py"),
       "--config=lta_lora@dropout8_system_malloc", "--threads=1",
       "--profile_steps=1", "--top=5", f"--hlo_out={hlo}", *TINY],
      cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
      env={k: v for k, v in os.environ.items() if k != "LTA_HOST_MALLOC"})
  assert proc.returncode == 0, proc.stdout + proc.stderr
  out = proc.stdout
  # The variant's malloc setting and the 1-thread XLA flags took effect.
  assert "LTA_HOST_MALLOC=system" in out
  assert "intra_op_parallelism_threads=1" in out
  assert re.search(r"step 1: [\d.]+ s, minor page faults [\d,]+", out)
  kinds_table, ops_table = out.split("longest operations")
  row = re.compile(r"^\| (\S+) \| ([\d.]+) \| ([\d.]+)% \|$", re.M)
  rows = row.findall(ops_table)
  assert len(rows) == 5, out
  # Operations are named as in the compiled program it wrote; kinds are
  # their names without the number, each a share of the summed time.
  assert all(name in hlo.read_text() for name, _, _ in rows), rows
  kinds = row.findall(kinds_table)
  assert len(kinds) == 5, out
  assert all(not re.search(r"\.\d+$", name) for name, _, _ in kinds), kinds
  assert 0 < sum(float(share) for _, _, share in kinds) <= 100.5, kinds
  assert re.search(r"operations' time per thread \(s\): [\d.]+", out)


def test_profile_refuses_a_configuration_it_cannot_build():
  proc = subprocess.run(
      [sys.executable,
       os.path.join(cli_run.REPO, "bench", "profile_train_step.py"),
       "--config=hf_lora"], capture_output=True, text=True, timeout=120,
      check=False)
  assert proc.returncode != 0
  assert "an lta configuration" in proc.stderr
