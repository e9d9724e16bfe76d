"""What the benchmark tables say about the machine they ran on."""

import os
import platform


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def load() -> str:
  """1/5/15-minute load averages: how shared the machine was."""
  return "/".join(f"{x:.2f}" for x in os.getloadavg())
