"""Grid sweeps over gin bindings: expand into jobs, run or print, collect.

A grid is `NAME=[v1, v2, ...]` per binding (Python literals, written back in
gin syntax); the jobs are their Cartesian product, each with its own output
directory under the sweep's workdir, bound through `output_binding`. The
command every job runs is an argv list, never re-split by a shell. Jobs run
here one after another, or are printed shell-quoted (optionally behind a
launcher such as `launch/tpu_vm.sh run ... --`) for a cluster. `collect`
reads every job's scores.json ({method label: {language: {metric: value}}}, what
`lta eval` writes) into one Markdown and CSV table with the grid values as
columns.

Jobs run here share one persistent XLA compilation cache,
<workdir>/jax_cache (unless JAX_COMPILATION_CACHE_DIR is set): a λ grid
changes only the merged weights, which are arguments of the compiled
programs, so the first job compiles and the others load its programs.

A sweep of `lta eval` over a composition scores the task-vector baseline
once: one extra job, `baseline`, scores only the baseline
(run_eval.baseline="only"), and the grid jobs skip it
(run_eval.baseline="exclude"), so the table has one baseline row, not one
per job labelled with that job's grid values.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Any, Optional, Sequence

from lta import errors

JOBS_FILE = "jobs.json"
COMPILATION_CACHE = "jax_cache"
BASELINE_JOB = "baseline"
EVAL_BASELINE_BINDING = "run_eval.baseline"


class SweepJobFailed(errors.LtaError):
  """A job of the sweep exited with an error (its own output says which)."""


@dataclasses.dataclass
class Job:
  name: str
  bindings: dict[str, Any]
  output_dir: str
  argv: list[str]


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
  """{'LAMBDA': [0.3, 0.5]} from ['LAMBDA=[0.3, 0.5]']."""
  grid: dict[str, list[Any]] = {}
  for spec in specs:
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not re.fullmatch(r"[\w./]+", name):
      raise errors.ConfigError(
          f"--grid {spec!r}: expected NAME=[v1, v2, ...]")
    try:
      parsed = ast.literal_eval(values.strip())
    except (ValueError, SyntaxError) as e:
      raise errors.ConfigError(
          f"--grid {spec!r}: values must be a Python list literal, e.g. "
          f"{name}=[0.3, 0.5] ({e})") from None
    if not isinstance(parsed, (list, tuple)) or not parsed:
      raise errors.ConfigError(
          f"--grid {spec!r}: values must be a non-empty list")
    if name in grid:
      raise errors.ConfigError(f"--grid {name} given twice")
    grid[name] = list(parsed)
  return grid


def gin_literal(value: Any) -> str:
  """A Python value in gin syntax (strings double-quoted)."""
  if isinstance(value, str):
    return json.dumps(value)
  return repr(value)


def _slug(bindings: dict[str, Any]) -> str:
  parts = [f"{name.rsplit('.', 1)[-1]}={v}" for name, v in bindings.items()]
  return re.sub(r"[^\w.=,-]+", "_", ",".join(parts))[:200]


def is_eval_command(argv: Sequence[str]) -> bool:
  """`lta eval ...`, `python -m lta.cli.eval ...` or `... lta.cli.main eval`."""
  argv = list(argv)
  if argv[:1] and os.path.basename(argv[0]) == "lta":
    return argv[1:2] == ["eval"]
  if "-m" in argv:
    module = argv[argv.index("-m") + 1:]
    return (module[:1] == ["lta.cli.eval"] or
            module[:2] == ["lta.cli.main", "eval"])
  return False


def expand(command: Sequence[str], grid: dict[str, list[Any]], workdir: str,
           output_binding: str, eval_baseline: str = "once") -> list[Job]:
  """One job per point of the grid's Cartesian product.

  With eval_baseline="once" and an `lta eval` command, a first job scores
  the task-vector baseline and the grid jobs skip it.
  """
  command = list(command)
  if not command:
    raise errors.ConfigError(
        "lta sweep: give the command every job runs after --, e.g. "
        "lta sweep --workdir=W --grid='LAMBDA=[0.3, 0.7]' -- lta eval ...")
  if eval_baseline not in ("once", "every_job"):
    raise errors.ConfigError(
        f"--eval_baseline={eval_baseline}: expected once or every_job")
  # An eval of single adapters (adapter_dir bound) composes nothing.
  adapter_dir = "run_eval.adapter_dir"
  split_baseline = (
      eval_baseline == "once" and is_eval_command(command) and
      adapter_dir not in grid and
      not any(a.startswith(f"--gin.{adapter_dir}=") for a in command))

  def job(name: str, bindings: dict[str, Any], extra: list[str]) -> Job:
    output_dir = os.path.join(workdir, name)
    flags = [f"--gin.{k}={gin_literal(v)}" for k, v in bindings.items()]
    flags += extra + [f"--gin.{output_binding}={gin_literal(output_dir)}"]
    return Job(name, bindings, output_dir, command + flags)

  jobs = []
  if split_baseline:
    jobs.append(job(BASELINE_JOB, {},
                    [f"--gin.{EVAL_BASELINE_BINDING}=\"only\""]))
  skip = [f"--gin.{EVAL_BASELINE_BINDING}=\"exclude\""] if split_baseline \
      else []
  names = list(grid)
  for i, values in enumerate(itertools.product(*grid.values())):
    bindings = dict(zip(names, values))
    jobs.append(job(f"{i:03d}_{_slug(bindings)}", bindings, skip))
  return jobs


def write_jobs(jobs: Sequence[Job], workdir: str) -> str:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, JOBS_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump([dataclasses.asdict(j) for j in jobs], f, indent=2)
  return path


def read_jobs(workdir: str) -> list[Job]:
  path = os.path.join(workdir, JOBS_FILE)
  if not os.path.exists(path):
    raise errors.MissingFileError(
        f"{path} not found: expand the sweep first (lta sweep --mode=local "
        "or --mode=print)")
  with open(path, encoding="utf-8") as f:
    return [Job(**j) for j in json.load(f)]


def command_line(job: Job, prefix: str = "") -> str:
  return " ".join(filter(None, [prefix, shlex.join(job.argv)]))


def local_argv(argv: Sequence[str]) -> list[str]:
  """`lta ...` runs as `python -m lta.cli.main ...` (no install needed)."""
  if argv and argv[0] == "lta":
    return [sys.executable, "-m", "lta.cli.main", *argv[1:]]
  return list(argv)


def shared_compilation_cache(env: dict[str, str],
                             workdir: str) -> dict[str, str]:
  """`env` with one persistent XLA compilation cache for every job, caching
  every program however fast it compiled; a cache set in `env` wins."""
  if env.get("JAX_COMPILATION_CACHE_DIR"):
    return env
  return {**env,
          "JAX_COMPILATION_CACHE_DIR": os.path.join(workdir,
                                                    COMPILATION_CACHE),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def run_local(jobs: Sequence[Job], env: Optional[dict[str, str]] = None,
              cwd: Optional[str] = None) -> None:
  """Runs the jobs one after another; the first failure stops the sweep.

  The jobs share a compilation cache in their workdir (the parent of their
  output directories; see shared_compilation_cache).
  """
  if jobs:
    env = shared_compilation_cache(dict(os.environ if env is None else env),
                                   os.path.dirname(jobs[0].output_dir))
  for i, job in enumerate(jobs):
    print(f"[sweep {i + 1}/{len(jobs)}] {command_line(job)}", flush=True)
    proc = subprocess.run(local_argv(job.argv), env=env, cwd=cwd, check=False)
    if proc.returncode != 0:
      raise SweepJobFailed(f"sweep job {job.name} failed with exit code "
                           f"{proc.returncode}: {command_line(job)}")


def collect(workdir: str, metric: str = "rouge2") -> list[dict[str, Any]]:
  """One row per job and method: grid values, `metric` per language, avg.

  A job without a grid value (the eval baseline) leaves those cells empty.
  """
  rows = []
  jobs = read_jobs(workdir)
  grid_names = list(dict.fromkeys(n for job in jobs for n in job.bindings))
  for job in jobs:
    path = os.path.join(job.output_dir, "scores.json")
    if not os.path.exists(path):
      raise errors.MissingFileError(
          f"sweep job {job.name}: {path} not found (has the job run?)")
    with open(path, encoding="utf-8") as f:
      scores = json.load(f)
    for method, by_lang in scores.items():
      row: dict[str, Any] = {"job": job.name,
                             **{n: job.bindings.get(n) for n in grid_names},
                             "method": method}
      values = []
      for lang, lang_scores in by_lang.items():
        if metric not in lang_scores:
          raise errors.DataError(
              f"{path}: {method}/{lang} has no {metric!r} score (has "
              f"{sorted(lang_scores)}); choose one with --metric")
        row[lang] = float(lang_scores[metric])
        values.append(row[lang])
      row["avg"] = sum(values) / len(values) if values else float("nan")
      rows.append(row)
  return rows


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
  columns: list[str] = []
  for row in rows:
    columns += [k for k in row if k not in columns]
  columns.remove("avg")
  return columns + ["avg"]


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.2f}"
  return "" if value is None else str(value)


def write_table(rows: Sequence[dict[str, Any]], workdir: str,
                metric: str = "rouge2") -> dict[str, str]:
  """sweep.md and sweep.csv in workdir."""
  if not rows:
    raise errors.DataError(f"No results to collect in {workdir}")
  columns = _columns(rows)
  md = os.path.join(workdir, "sweep.md")
  with open(md, "w", encoding="utf-8") as f:
    f.write(f"Sweep results: {metric} per language.\n\n")
    f.write("| " + " | ".join(columns) + " |\n")
    f.write("|" + "---|" * len(columns) + "\n")
    for row in rows:
      f.write("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |\n")
  path_csv = os.path.join(workdir, "sweep.csv")
  with open(path_csv, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
  return {"sweep.md": md, "sweep.csv": path_csv}
