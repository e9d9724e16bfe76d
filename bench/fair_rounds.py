"""Fair side-by-side timing: worker processes interleaved in rounds.

Each round runs every configuration once, each in a fresh worker process, in
alternating order (A B, then B A: a linear drift in machine speed hits both
alike); ratios are taken within a round (paired) and summarised by their
median over rounds. Around each round the script records the load average
and the CPU time other processes used during the round, from /proc/stat
minus this script's own children ("others' load", in busy cores). A round
whose others' load exceeds --max_load is thrown away and repeated, at most
--max_retries times in the whole run; after that a loaded round is kept and
flagged, and the count is reported.

Threads: --threads for torch (torch.set_num_threads, OMP_NUM_THREADS); XLA
uses every core, its best, unless --threads=1; --omp_wait_policy for torch ('' = torch's default,
its best on an idle machine). --pin_cpu N runs every worker under
`taskset -c N` with one thread each (XLA: --xla_cpu_multi_thread_eigen=false
and intra_op_parallelism_threads=1): the least noisy comparison.
Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from typing import Callable, Optional, Sequence


def add_flags(p: argparse.ArgumentParser, rounds: int = 5) -> None:
  p.add_argument("--rounds", type=int, default=rounds,
                 help="rounds kept; each runs every configuration once")
  p.add_argument("--order", choices=("abba", "abab"), default="abba",
                 help="abba reverses the order every other round")
  p.add_argument("--max_load", type=float, default=1.5,
                 help="throw a round away when others' load exceeded this")
  p.add_argument("--max_retries", type=int, default=3,
                 help="rounds thrown away at most, in the whole run")
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="threads of each framework")
  p.add_argument("--omp_wait_policy", default="",
                 help="OMP_WAIT_POLICY for torch ('' = torch's default)")
  p.add_argument("--pin_cpu", type=int, default=None,
                 help="run every worker on this one CPU, 1 thread each")


def check_flags(flags) -> None:
  if flags.pin_cpu is not None:
    if shutil.which("taskset") is None:
      raise SystemExit("--pin_cpu needs `taskset` (util-linux)")
    flags.threads = 1
  if flags.rounds < 1 or flags.threads < 1:
    raise SystemExit(f"--rounds={flags.rounds} and --threads={flags.threads} "
                     "must be >= 1")


def xla_flags(threads: int, pinned: bool) -> str:
  """XLA_FLAGS of an lta worker: one thread, or XLA's default (every core)."""
  if pinned or threads == 1:
    return ("--xla_cpu_multi_thread_eigen=false "
            "intra_op_parallelism_threads=1")
  return ""


def worker_env(flags, torch_side: bool) -> dict[str, str]:
  """The environment of one worker: threads and OpenMP policy, recorded."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  env.pop("OMP_WAIT_POLICY", None)
  if torch_side:
    env["OMP_NUM_THREADS"] = str(flags.threads)
    if flags.omp_wait_policy:
      env["OMP_WAIT_POLICY"] = flags.omp_wait_policy
  elif xla_flags(flags.threads, flags.pin_cpu is not None):
    env["XLA_FLAGS"] = xla_flags(flags.threads, flags.pin_cpu is not None)
  return env


def worker_command(flags, argv: Sequence[str]) -> list[str]:
  if flags.pin_cpu is None:
    return list(argv)
  return ["taskset", "-c", str(flags.pin_cpu), *argv]


def settings(flags) -> str:
  pin = (f"pinned to CPU {flags.pin_cpu} (taskset)" if flags.pin_cpu
         is not None else "not pinned")
  xla = xla_flags(flags.threads, flags.pin_cpu is not None)
  return (f"{pin}; XLA_FLAGS='{xla}' ("
          f"{'1 thread' if xla else 'every core'}); torch "
          f"{flags.threads} thread(s), "
          f"OMP_WAIT_POLICY={flags.omp_wait_policy or '(torch default)'}, "
          f"OMP_NUM_THREADS={flags.threads}")


def _cpu_busy_s() -> float:
  """Seconds all CPUs were busy since boot (/proc/stat)."""
  with open("/proc/stat") as f:
    fields = [float(x) for x in f.readline().split()[1:]]
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle, iowait
  return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
  r = resource.getrusage(resource.RUSAGE_CHILDREN)
  return r.ru_utime + r.ru_stime


def run_worker(cmd: list[str], env: dict[str, str], cwd: str) -> dict:
  """Runs one worker; returns the JSON it prints on a 'RESULT ' line."""
  proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True,
                        text=True, check=False)
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  raise RuntimeError(f"{cmd[-1]} failed (exit {proc.returncode}):\n"
                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@dataclasses.dataclass
class Round:
  results: dict[str, dict]
  order: list[str]
  load_before: str
  load_after: str
  others_load: float  # busy cores used by other processes, on average
  kept_despite_load: bool = False


def run_rounds(names: Sequence[str], run_one: Callable[[str], dict], flags,
               say: Callable[[str], None] = print) -> tuple[list[Round], int]:
  """(kept rounds, rounds thrown away); run_one(name) runs one worker."""
  kept, thrown = [], 0
  while len(kept) < flags.rounds:
    order = list(names)
    if flags.order == "abba" and len(kept) % 2:
      order.reverse()
    load_before = load()
    busy0, ours0, t0 = _cpu_busy_s(), _children_cpu_s(), time.monotonic()
    results = {name: run_one(name) for name in order}
    elapsed = time.monotonic() - t0
    others = max(0.0, (_cpu_busy_s() - busy0) -
                 (_children_cpu_s() - ours0)) / elapsed
    r = Round(results, order, load_before, load(), others)
    if others > flags.max_load and thrown < flags.max_retries:
      thrown += 1
      say(f"  round thrown away: others' load {others:.2f} > "
          f"{flags.max_load} (load avg {r.load_before} -> {r.load_after}); "
          f"{flags.max_retries - thrown} retries left")
      continue
    r.kept_despite_load = others > flags.max_load
    kept.append(r)
    say(f"  round {len(kept)}/{flags.rounds} ({' '.join(order)}): others' "
        f"load {others:.2f}, load avg {r.load_before} -> {r.load_after}"
        f"{' (kept: no retries left)' if r.kept_despite_load else ''}")
  return kept, thrown


def load() -> str:
  return "/".join(f"{x:.2f}" for x in os.getloadavg())


def paired_ratios(rounds: Sequence[Round], a: str, b: str,
                  key: Callable[[dict], float]) -> Optional[list[float]]:
  """key(a) / key(b) in each round (None when a config is missing)."""
  if not rounds or a not in rounds[0].results or b not in rounds[0].results:
    return None
  return [key(r.results[a]) / key(r.results[b]) for r in rounds]


def summary(values: Sequence[float]) -> str:
  return (f"{statistics.median(values):.3f} "
          f"({min(values):.3f}-{max(values):.3f})")


def rounds_record(rounds: Sequence[Round], thrown: int) -> dict:
  return {"thrown_away": thrown,
          "rounds": [dataclasses.asdict(r) for r in rounds]}
