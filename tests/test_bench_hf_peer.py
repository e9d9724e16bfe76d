"""bench/hf_peer.py: the HF peer's interpreter is the repository's .venv-hf.

Benches and fixture scripts find it from their own location (not the
working directory), and say in one line to run `make hf-env` when it is
missing.
"""

import os
import shutil
import subprocess
import sys

from tests import cli_run

BENCH = os.path.join(cli_run.REPO, "bench")
SCRIPT = """import sys
import hf_peer
hf_peer.run_under_peer()
print("ran here")
"""


def _run(args, cwd, **env):
  return subprocess.run([sys.executable, *args], cwd=cwd, text=True,
                        capture_output=True, timeout=300,
                        env={**os.environ, **env})


def _one_line_error(proc):
  assert proc.returncode == 1, proc.stdout + proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  return lines[0]


def test_the_default_is_the_repositorys_venv_hf(tmp_path):
  proc = _run(["-c", "import hf_peer; print(hf_peer.DEFAULT_PYTHON)"],
              cwd=tmp_path, PYTHONPATH=BENCH)
  assert proc.stdout.strip() == os.path.join(cli_run.REPO, ".venv-hf", "bin",
                                             "python")


def test_bench_train_stops_at_once_when_the_peer_is_missing(tmp_path):
  missing = str(tmp_path / "no-venv" / "bin" / "python")
  proc = _run([os.path.join(BENCH, "bench_train.py"), "--configs=hf_lora",
               f"--hf_python={missing}"], cwd=tmp_path)
  line = _one_line_error(proc)
  assert missing in line and "make hf-env" in line
  assert "requirements/hf-peer.txt" in line


def test_bench_decode_stops_before_timing_lta(tmp_path):
  missing = str(tmp_path / "python")
  proc = _run([os.path.join(BENCH, "bench_decode.py"), "--quick",
               f"--hf_python={missing}"], cwd=tmp_path)
  line = _one_line_error(proc)
  assert missing in line and "make hf-env" in line
  assert "lta base" not in proc.stdout


def _copy_of_the_repo(tmp_path):
  """bench/hf_peer.py and a script that needs torch, in another repository."""
  repo = tmp_path / "repo"
  (repo / "bench").mkdir(parents=True)
  shutil.copy(os.path.join(BENCH, "hf_peer.py"), repo / "bench")
  (repo / "bench" / "needs_torch.py").write_text(SCRIPT)
  return repo


def test_a_script_without_torch_names_make_hf_env(tmp_path):
  repo = _copy_of_the_repo(tmp_path)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  proc = _run([str(repo / "bench" / "needs_torch.py")], cwd=elsewhere)
  line = _one_line_error(proc)  # lta's venv has no torch
  assert str(repo / ".venv-hf" / "bin" / "python") in line
  assert "make hf-env" in line and str(repo) in line


def test_a_script_without_torch_reruns_under_venv_hf(tmp_path):
  repo = _copy_of_the_repo(tmp_path)
  peer = repo / ".venv-hf" / "bin" / "python"
  peer.parent.mkdir(parents=True)
  peer.write_text('#!/bin/sh\necho "peer ran: $*"\n')
  peer.chmod(0o755)
  script = str(repo / "bench" / "needs_torch.py")
  proc = _run([script, "--flag=1"], cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == f"peer ran: {script} --flag=1"
