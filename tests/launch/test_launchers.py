"""Each launcher's --dry-run prints the exact commands it would run."""

import os
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LTA_ARGS = ["train", "--gin_file=experiments/task_vector_xlsum.gin",
            '--gin.MIXTURE_OR_TASK_NAME="xlsum.sw"',
            '--gin.MODEL_DIR="gs://bucket/runs/task_xlsum_sw"']


def _launch(script, *args, ok=True):
  proc = subprocess.run([os.path.join(REPO, "launch", script), *args],
                        capture_output=True, text=True, timeout=20)
  assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
  return proc


def _argv(line):
  return shlex.split(line)


def test_tpu_vm_create_and_delete():
  out = _launch("tpu_vm.sh", "create", "--name", "lta-v4", "--zone",
                "us-central2-b", "--accelerator", "v4-32", "--version",
                "tpu-ubuntu2204-base", "--dry-run").stdout
  assert _argv(out) == ["gcloud", "compute", "tpus", "tpu-vm", "create",
                        "lta-v4", "--zone=us-central2-b",
                        "--accelerator-type=v4-32",
                        "--version=tpu-ubuntu2204-base"]
  out = _launch("tpu_vm.sh", "delete", "--name", "lta-v4", "--zone",
                "us-central2-b", "--dry-run").stdout
  assert _argv(out) == ["gcloud", "compute", "tpus", "tpu-vm", "delete",
                        "lta-v4", "--zone=us-central2-b", "--quiet"]


def test_tpu_vm_setup_makes_a_python_311_venv_from_the_lock():
  out = _launch("tpu_vm.sh", "setup", "--name", "lta-v4", "--zone", "z",
                "--repo", "https://example.org/lta.git", "--dry-run").stdout
  argv = _argv(out)
  assert argv[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "lta-v4",
                      "--zone=z"]
  assert "--worker=all" in argv
  assert argv[-1].startswith("--command=")
  steps = argv[-1][len("--command="):].split(" && ")
  assert steps == [
      "git clone --branch main https://example.org/lta.git lta", "cd lta",
      # The image's python3 is 3.10; jax 0.10 and numpy 2.4 need >= 3.11.
      "sudo apt-get update -qq",
      "sudo apt-get install -y -qq python3.11 python3.11-venv",
      # The Makefile's venv from requirements/lock.txt, then the TPU extra.
      "make PYTHON=python3.11 install",
      ".venv/bin/python -m pip install --quiet --no-build-isolation "
      "-e '.[tpu]'"]
  makefile = open(os.path.join(REPO, "Makefile")).read()
  assert "--require-hashes --no-deps -r $(LOCK)" in makefile
  assert "LOCK := requirements/lock.txt" in makefile
  other = _argv(_launch("tpu_vm.sh", "setup", "--name", "n", "--zone", "z",
                        "--repo", "r", "--python", "python3.12",
                        "--dry-run").stdout)[-1]
  assert "python3.12 python3.12-venv" in other
  assert "make PYTHON=python3.12 install" in other
  _launch("tpu_vm.sh", "setup", "--name", "n", "--zone", "z", "--dry-run",
          ok=False)


def test_tpu_vm_run_passes_gin_flags_and_enables_distributed_init():
  out = _launch("tpu_vm.sh", "run", "--name", "lta-v4", "--zone", "z",
                "--dry-run", "--", *LTA_ARGS).stdout
  argv = _argv(out)
  assert "--worker=all" in argv
  command = argv[-1][len("--command="):]
  assert command.startswith("cd lta && nohup .venv/bin/python -m "
                            "lta.cli.main ")
  assert command.endswith("> ~/lta_run.log 2>&1 &")
  # The remote shell sees exactly the lta arguments, quotes and all.
  remote = shlex.split(command.split("nohup ", 1)[1].split(" >", 1)[0])
  assert remote == [".venv/bin/python", "-m", "lta.cli.main", *LTA_ARGS,
                    "--gin.initialize_distributed.enabled=True"]


def test_tpu_vm_logs_streams_every_worker():
  argv = _argv(_launch("tpu_vm.sh", "logs", "--name", "n", "--zone", "z",
                       "--dry-run").stdout)
  assert "--worker=all" in argv
  assert argv[-1] == "--command=tail -n 100 -f ~/lta_run.log"


def test_tpu_vm_rejects_missing_name_and_unknown_action():
  assert "required" in _launch("tpu_vm.sh", "create", "--zone", "z",
                               "--dry-run", ok=False).stderr
  assert "unknown action" in _launch("tpu_vm.sh", "explode", "--name", "n",
                                     "--zone", "z", ok=False).stderr


def test_gpu_single_node():
  argv = _argv(_launch("gpu.sh", "--dry-run", "--", *LTA_ARGS).stdout)
  assert argv == ["env", "JAX_PLATFORMS=cuda", "lta", *LTA_ARGS]


@pytest.mark.parametrize("rank", [0, 1])
def test_gpu_multi_node_binds_jax_distributed_init(rank):
  argv = _argv(_launch("gpu.sh", "--num_nodes", "2", "--node_rank",
                       str(rank), "--coordinator", "10.0.0.1:1234",
                       "--dry-run", "--", *LTA_ARGS).stdout)
  assert argv == ["env", "JAX_PLATFORMS=cuda", "lta", *LTA_ARGS,
                  "--gin.initialize_distributed.enabled=True",
                  '--gin.initialize_distributed.coordinator_address='
                  '"10.0.0.1:1234"',
                  "--gin.initialize_distributed.num_processes=2",
                  f"--gin.initialize_distributed.process_id={rank}"]


def test_gpu_multi_node_needs_a_coordinator():
  assert "--coordinator" in _launch("gpu.sh", "--num_nodes", "2", "--",
                                    *LTA_ARGS, ok=False).stderr


def test_local_cpu():
  argv = _argv(_launch("local.sh", "--dry-run", "--", *LTA_ARGS).stdout)
  assert argv == ["env", "JAX_PLATFORMS=cpu", "lta", *LTA_ARGS]


def test_vector_paths_is_a_gin_file_for_the_table_files(tmp_path):
  import gin  # pylint: disable=g-import-not-at-top
  text = _launch("vector_paths.sh", "/runs").stdout
  gin.clear_config()
  try:
    gin.parse_config(text)
    tasks = gin.query_parameter("%TASK_VECTORS")
    langs = gin.query_parameter("%LANGUAGE_VECTORS")
  finally:
    gin.clear_config()
  assert len(tasks) == 11 and tasks["en"] == "/runs/task_xlsum_en/adapter"
  assert len(langs) == 23 and langs["fi"] == "/runs/lang_fi/adapter"
  krona = _launch("vector_paths.sh", "/runs", "--krona").stdout
  assert "'sw': '/runs/task_xlsum_krona_sw/adapter'" in krona


@pytest.mark.parametrize("script,first_line", [
    ("tpu_vm.sh", "Cloud TPU VM launcher"), ("gpu.sh", "GPU launcher"),
    ("local.sh", "Local CPU launcher"),
    ("vector_paths.sh", "Prints the TASK_VECTORS")])
def test_every_launcher_has_help(script, first_line):
  proc = _launch(script, "--help")
  assert proc.stdout.startswith(first_line) and proc.stderr == ""
  assert "--help" in proc.stdout and "set -euo" not in proc.stdout
  if script != "vector_paths.sh":
    assert "--dry-run" in proc.stdout
  if script == "gpu.sh":
    assert "pip install -e '.[gpu]'" in proc.stdout


def test_a_launcher_mistake_prints_help_on_stderr():
  proc = _launch("gpu.sh", "--bogus", ok=False)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.startswith("gpu.sh: unknown flag --bogus")
  assert "GPU launcher" in proc.stderr
