"""Expands a grid of gin bindings into jobs; runs or prints them; one table.

  lta sweep --mode=local --workdir=/tmp/sweep \\
    --grid='LAMBDA=[0.3, 0.5, 0.7]' --grid='run_eval.space=["factor", "delta"]' \\
    -- lta eval --gin_file=runs/eval.gin \\
         --gin.run_eval.base_checkpoint=\\"$MT5_BASE\\" ...

The command every job runs comes after `--`, word for word as your shell
passed it (quote it as you would to run it alone); each job adds its grid
bindings and --gin.<output_binding>=<workdir>/<job>. --mode=local runs the
jobs one after another, then writes <workdir>/sweep.md and .csv;
--mode=print prints them shell-quoted instead (--prefix="launch/tpu_vm.sh
run --name N --zone Z --" puts a launcher in front), and --mode=collect
builds the table once they have run. A sweep of `lta eval` scores the
task-vector baseline once, in a job of its own (--eval_baseline=every_job:
in every job, as `lta eval` alone does).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from lta import errors
from lta.jobs import sweep as sweep_launcher
from lta.cli import runner


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="lta sweep", usage="lta sweep [flags] -- COMMAND [ARG ...]",
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--mode", choices=("local", "print", "collect"),
                 default="local")
  p.add_argument("--workdir", required=True,
                 help="one output dir per job under it, and the table")
  p.add_argument("--grid", action="append", default=[],
                 help="NAME=[v1, v2, ...], repeatable")
  p.add_argument("--output_binding", default="run_eval.output_dir",
                 help="the gin binding that takes each job's output dir")
  p.add_argument("--prefix", default="",
                 help="printed before each command in --mode=print")
  p.add_argument("--metric", default="rouge2",
                 help="the score collected from each scores.json")
  p.add_argument("--eval_baseline", choices=("once", "every_job"),
                 default="once",
                 help="where a sweep of `lta eval` scores the baseline")
  p.add_argument("--base_command", help=argparse.SUPPRESS)  # the old form
  return p


def main(argv: Sequence[str]) -> int:
  argv = list(argv)
  split = argv.index("--") if "--" in argv else len(argv)
  args = _parser().parse_args(argv[:split])
  command = argv[split + 1:]
  if args.base_command is not None:
    raise errors.ConfigError(
        "--base_command is gone: give the command after --, e.g. lta sweep "
        "--workdir=W --grid='LAMBDA=[0.3, 0.7]' -- lta eval --gin_file=...")
  if args.mode != "collect":
    if not command or not args.grid:
      raise errors.ConfigError(
          "give at least one --grid, and the command every job runs after "
          "--, e.g. lta sweep --workdir=W --grid='LAMBDA=[0.3, 0.7]' -- "
          "lta eval --gin_file=...")
    jobs = sweep_launcher.expand(command, sweep_launcher.parse_grid(args.grid),
                                 args.workdir, args.output_binding,
                                 args.eval_baseline)
    sweep_launcher.write_jobs(jobs, args.workdir)
    if args.mode == "print":
      for job in jobs:
        print(sweep_launcher.command_line(job, args.prefix))
      return 0
    sweep_launcher.run_local(jobs)
  rows = sweep_launcher.collect(args.workdir, args.metric)
  paths = sweep_launcher.write_table(rows, args.workdir, args.metric)
  with open(paths["sweep.md"], encoding="utf-8") as f:
    print(f.read())
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
