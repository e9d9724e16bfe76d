"""What the benchmark tables say about the machine they ran on."""

import os
import platform
import resource
import time
from typing import Callable, Optional


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


def peak_rss_mb() -> float:
  """This process's resident-memory high-water mark, in MB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def minor_page_faults() -> int:
  """This process's minor page faults so far (pages first touched)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn: Callable[[], object], warmup: int, steps: int,
          page_faults: Optional[list[int]] = None) -> list[float]:
  """Seconds of each of `steps` calls of fn, after `warmup` untimed ones;
  each call's minor page faults are appended to `page_faults` if given."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    faults = minor_page_faults()
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
    if page_faults is not None:
      page_faults.append(minor_page_faults() - faults)
  return times
