"""Plans memory: compiles the train step for TPU/GPU meshes, allocates nothing.

  lta plan --gin_file=models/mt5_xxl.gin --gin_file=peft/lora_r4.gin \\
    --gin_file=runs/plan.gin \\
    --gin.TASK_FEATURE_LENGTHS="{'inputs': 512, 'targets': 64}" \\
    --gin.TARGETS="['v4-32', '8xH100']" --gin.BATCH_SIZES="[32, 64]"

Compiles lta train's step ahead of time for each target's (data, model)
meshes on fake CPU devices and prints XLA's per-device accounting
(arguments, outputs, temporaries, total) against the chip's memory, then
which mesh and batch fit. The numbers are the CPU backend's accounting, not
the TPU's or GPU's (see docs/scale.md). Also `python -m lta.cli.plan`.
Exit codes: 0 planned (whether or not anything fits); 2 bad flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

from lta.cli import gin_flags as gin_cli
from lta.cli import runner
from lta.cli.train import check_adapter_bound

RUN_FILES = ("runs/plan.gin",)


def main(argv: Sequence[str]) -> int:
  # pylint: disable=g-import-not-at-top  (`lta plan --help` needs no JAX)
  from lta.train import memory_plan
  gin_cli.parse_and_configure(argv, entries=[memory_plan.plan_memory])
  check_adapter_bound("plan_memory")
  printed = []

  def report(row):
    if not printed:  # the header once the compiles have started here
      print(memory_plan.CPU_ACCOUNTING_NOTE + "\n\n" +
            memory_plan.TABLE_HEADER)
    printed.append(row)
    print(memory_plan.table_row(row), flush=True)

  try:
    rows = memory_plan.plan_memory(report=report)
  except memory_plan.TooFewDevices as e:
    # JAX started with fewer devices than the target has chips (as in a
    # test session): plan in a fresh process that has enough, which
    # shows its own traceback under --debug.
    env = memory_plan.fake_device_env(e.needed, dict(os.environ))
    return subprocess.run(
        [sys.executable, "-m", "lta.cli.plan", *runner.debug_flags(), *argv],
        env=env, check=False).returncode
  print("\n".join(memory_plan.summary(rows)), flush=True)
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
