"""Under SLURM's srun a process finds its place in the job from SLURM_*."""

import pytest

from lta import errors
from lta import partitioning

SRUN = {"SLURM_STEP_NODELIST": "gpu[003-004,007],cpu1", "SLURM_NTASKS": "16",
        "SLURM_PROCID": "5", "SLURM_JOB_ID": "12345"}


def test_srun_variables_give_the_lta_environment(monkeypatch):
  for name, value in SRUN.items():
    monkeypatch.setenv(name, value)
  monkeypatch.delenv(partitioning.ENV_COORDINATOR_PORT, raising=False)
  assert partitioning.slurm_environment() == {
      "LTA_COORDINATOR_ADDRESS": f"gpu003:{61440 + 12345 % 4096}",
      "LTA_NUM_PROCESSES": "16", "LTA_PROCESS_ID": "5"}
  monkeypatch.setenv(partitioning.ENV_COORDINATOR_PORT, "7777")
  assert partitioning.slurm_environment()[
      "LTA_COORDINATOR_ADDRESS"] == "gpu003:7777"
  monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: nothing to join
  assert partitioning.slurm_environment() == {}
  monkeypatch.setenv("SLURM_NTASKS", "two")
  with pytest.raises(errors.ConfigError, match="SLURM_NTASKS='two'"):
    partitioning.slurm_environment()


@pytest.mark.parametrize("nodelist,first", [
    ("node7", "node7"), ("a1,b2", "a1"), ("n[1-2]", "n1"),
    ("gpu[003,007-010],x", "gpu003")])
def test_first_node_of_a_nodelist(nodelist, first):
  assert partitioning.first_slurm_node(nodelist) == first
