"""bench/bench_setup_memory.py: `lta train`'s set-up (init_variables,
create_state) on an HF base, run on the shipped tiny Qwen2 checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
from safetensors import safe_open

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QWEN2 = os.path.join(REPO, "tests", "fixtures", "hf", "decoder", "qwen2_tiny")


def test_reports_the_peaks_of_load_and_set_up():
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "bench", "bench_setup_memory.py"),
       f"--weights_dir={QWEN2}"], cwd=REPO, capture_output=True, text=True,
      timeout=300, check=False, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.splitlines()[-1])
  # It loaded the whole checkpoint: the size of every float32 tensor in it.
  with safe_open(os.path.join(QWEN2, "model.safetensors"), "np") as f:
    nbytes = sum(f.get_tensor(k).astype(np.float32).nbytes for k in f.keys())
  assert result["model_mb"] == round(nbytes / 2**20, 1)
  assert set(result) == {"model_mb", "start_peak_mb", "load_peak_mb",
                         "setup_peak_mb"}
