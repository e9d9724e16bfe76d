"""bench/bench_sweep.py --quick: the λ sweep bench's workers, in fresh
processes, decode each λ side by side and alone to the same ids."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_quick_sweep_decodes_side_by_side_as_alone(tmp_path):
  out = tmp_path / "sweep.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "bench", "bench_sweep.py"),
       "--quick", "--max_load=100", f"--json_out={out}"], cwd=REPO,
      capture_output=True, text=True, timeout=600, check=False,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  [row] = json.load(open(out))["rows"]
  sweep, alone, dec = row["sweep"], row["sweep_alone"], row["sweep_dec"]
  # One predict program per sweep: the 3 λ in one call of 3, or 3 alone.
  assert sweep["predict_compilations"] == alone["predict_compilations"] == 1
  assert sweep["last_ids_sum"] == alone["last_ids_sum"]
  assert not sweep["encoder_reused"] and dec["encoder_reused"]
  assert row["eval_s"] > 0 and sweep["vs_goal"] > 0
  assert "side by side (4 per call) against each λ alone" in proc.stdout
