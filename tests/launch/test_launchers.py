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


# A stand-in for `lta` on PATH: prints its place in the job; process
# $FAIL_ID exits 3 once the others have each started a child (its pid in
# $CHILDREN/<process id>) and wait for it.
STAND_IN = """#!/usr/bin/env bash
echo "$LTA_PROCESS_ID $LTA_NUM_PROCESSES $LTA_COORDINATOR_ADDRESS \
$JAX_PLATFORMS ${SLURM_PROCID:-} $*"
if [[ $LTA_PROCESS_ID == "${FAIL_ID:-}" ]]; then
  until [[ $(ls "$CHILDREN" | grep -c '^[0-9]*$') -ge $((LTA_NUM_PROCESSES - 1)) ]]
  do sleep 0.05; done
  exit 3
fi
if [[ -n ${FAIL_ID:-} ]]; then
  sleep 30 & echo $! > "$CHILDREN/tmp$LTA_PROCESS_ID"
  mv "$CHILDREN/tmp$LTA_PROCESS_ID" "$CHILDREN/$LTA_PROCESS_ID"; wait
fi
"""


def _stand_in_env(tmp_path, **extra):
  (tmp_path / "lta").write_text(STAND_IN)
  (tmp_path / "lta").chmod(0o755)
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("LTA_", "SLURM_"))}
  env.update(PATH=f"{tmp_path}:{env['PATH']}", CHILDREN=str(tmp_path),
             **extra)
  return env


def _run(script, *args, env):
  return subprocess.run([os.path.join(REPO, "launch", script), *args],
                        capture_output=True, text=True, timeout=20, env=env)


def test_local_processes_dry_run_gives_each_its_place_in_the_job():
  lines = _launch("local.sh", "--processes", "2", "--dry-run", "--",
                  *LTA_ARGS).stdout.splitlines()
  argvs = [_argv(line) for line in lines]
  address = argvs[0][1]
  assert address.startswith("LTA_COORDINATOR_ADDRESS=127.0.0.1:")
  assert argvs == [["env", address, "LTA_NUM_PROCESSES=2",
                    f"LTA_PROCESS_ID={i}", "JAX_PLATFORMS=cpu", "lta",
                    *LTA_ARGS] for i in range(2)]


def test_local_processes_run_together_and_all_finish(tmp_path):
  proc = _run("local.sh", "--processes", "3", "--", "train", "--x=a b",
              env=_stand_in_env(tmp_path))
  assert proc.returncode == 0, proc.stderr
  lines = sorted(proc.stdout.splitlines())
  port = lines[0].split()[2].split(":")[1]
  assert int(port) > 0
  assert lines == [f"{i} 3 127.0.0.1:{port} cpu  train --x=a b"
                   for i in range(3)]


# The launcher returns only once the killed processes' children are gone:
# SIGKILL takes effect when the child is next scheduled, and under load the
# children were once still running ('R') when the launcher had exited.
def test_local_processes_one_failure_kills_the_others(tmp_path):
  proc = _run("local.sh", "--processes", "3", "--", "train",
              env=_stand_in_env(tmp_path, FAIL_ID="1"))
  assert proc.returncode == 3
  assert proc.stderr.splitlines()[0] == (
      "local.sh: process 1 of 3 exited with 3; killing the others")
  for i in (0, 2):  # their children too: each process is its own group
    child = (tmp_path / str(i)).read_text().strip()
    stat = f"/proc/{child}/stat"
    assert (not os.path.exists(stat)
            or open(stat).read().split(") ")[1][0] == "Z"), child


def test_local_processes_must_be_a_positive_integer():
  assert "--processes 'two'" in _launch("local.sh", "--processes", "two",
                                        "--", "train", ok=False).stderr


def test_gpu_under_srun_passes_slurm_on_unchanged(tmp_path):
  srun = {"SLURM_STEP_NODELIST": "gpu[003-004]", "SLURM_NTASKS": "4",
          "SLURM_PROCID": "2", "SLURM_JOB_ID": "12345"}
  env = _stand_in_env(tmp_path, **srun)
  argv = _argv(_run("gpu.sh", "--dry-run", "--", *LTA_ARGS, env=env).stdout)
  assert argv == ["env", "JAX_PLATFORMS=cuda", "lta", *LTA_ARGS]
  proc = _run("gpu.sh", "--", "train", env=env)
  assert proc.stdout == "   cuda 2 train\n", proc.stderr
  refused = _run("gpu.sh", "--num_nodes", "2", "--coordinator", "h:1",
                 "--", "train", env=env)
  assert refused.returncode == 2
  assert "under srun (SLURM_NTASKS=4)" in refused.stderr
