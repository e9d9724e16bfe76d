"""bench/fair_rounds.py: interleaved rounds, paired ratios, the load gate.

Workers are real processes (a few lines of Python each); the competing load
is a real busy process that is not one of the bench's workers.
"""

import argparse
import json
import os
import subprocess
import sys

import pytest

from tests import cli_run

sys.path.insert(0, os.path.join(cli_run.REPO, "bench"))
import fair_rounds  # pylint: disable=g-import-not-at-top,wrong-import-position

WORKER = ("import json, os, time; t = time.perf_counter(); "
          "sum(range({n})); print('RESULT ' + json.dumps({{'s': "
          "time.perf_counter() - t, 'threads': os.environ.get("
          "'OMP_NUM_THREADS'), 'xla': os.environ.get('XLA_FLAGS')}}))")


def _flags(*argv):
  p = argparse.ArgumentParser()
  fair_rounds.add_flags(p)
  flags = p.parse_args(list(argv))
  fair_rounds.check_flags(flags)
  return flags


def _runner(flags, work):
  def run_one(name):
    cmd = fair_rounds.worker_command(
        flags, [sys.executable, "-c", WORKER.format(n=work[name])])
    return fair_rounds.run_worker(
        cmd, fair_rounds.worker_env(flags, torch_side=name == "b"),
        cli_run.REPO)
  return run_one


def test_rounds_alternate_and_ratios_are_paired():
  flags = _flags("--rounds=3", "--max_load=1000")
  rounds, thrown = fair_rounds.run_rounds(
      ["a", "b"], _runner(flags, {"a": 10**5, "b": 10**5}), flags,
      say=lambda _: None)
  assert thrown == 0 and len(rounds) == 3
  assert [r.order for r in rounds] == [["a", "b"], ["b", "a"], ["a", "b"]]
  ratios = fair_rounds.paired_ratios(rounds, "a", "b", lambda r: r["s"])
  assert ratios == [r.results["a"]["s"] / r.results["b"]["s"]
                    for r in rounds]
  assert all(r.load_before and r.load_after for r in rounds)
  # torch's side gets its thread count; XLA's is left to every core.
  assert rounds[0].results["b"]["threads"] == str(os.cpu_count())
  assert rounds[0].results["a"]["xla"] is None


def test_a_loaded_round_is_thrown_away_up_to_the_cap():
  flags = _flags("--rounds=1", "--max_load=0.3", "--max_retries=2")
  busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
  try:
    # The busy process is no worker: its CPU time is others' load.
    rounds, thrown = fair_rounds.run_rounds(
        ["a", "b"], _runner(flags, {"a": 3 * 10**6, "b": 3 * 10**6}), flags,
        say=lambda _: None)
  finally:
    busy.kill()
    busy.wait()
  assert thrown == 2
  assert len(rounds) == 1 and rounds[0].kept_despite_load
  assert rounds[0].others_load > 0.3
  record = fair_rounds.rounds_record(rounds, thrown)
  assert record["thrown_away"] == 2


def test_pinned_workers_run_on_one_cpu_with_one_thread():
  flags = _flags("--rounds=1", "--max_load=1000", "--pin_cpu=0")
  assert flags.threads == 1
  run_one = _runner(flags, {"a": 10, "b": 10})
  assert run_one("b")["threads"] == "1"
  assert "xla_cpu_multi_thread_eigen=false" in run_one("a")["xla"]
  affinity = subprocess.run(
      fair_rounds.worker_command(flags, [
          sys.executable, "-c", "import os; print(os.sched_getaffinity(0))"]),
      capture_output=True, text=True, check=True).stdout.strip()
  assert affinity == "{0}"


@pytest.mark.slow
def test_bench_train_pairs_each_optimisation_with_the_plain_step(tmp_path):
  out = tmp_path / "train.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(cli_run.REPO, "bench", "bench_train.py"),
       "--vocab=512", "--layers=1", "--d_model=32", "--d_ff=64", "--heads=2",
       "--d_kv=16", "--batch=2", "--inputs=16", "--targets=16", "--steps=1",
       "--warmup=1", "--rounds=2", "--max_load=1000", "--matmul_runs=1",
       "--matmul_shapes=32x32x32", "--configs=lta_lora,lta_lora@fast",
       f"--json_out={out}"], cwd=tmp_path, capture_output=True, text=True,
      timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "| lta LoRA @fast |" in proc.stdout
  record = json.loads(out.read_text())
  assert [r["order"] for r in record["rounds"]] == [
      ["lta_lora", "lta_lora@fast"], ["lta_lora@fast", "lta_lora"]]
  fast = record["summary"]["lta_lora@fast"]
  assert "dropout_mask_bits=8" in fast["backend"]
  assert len(fast["round_medians_s"]) == 2
