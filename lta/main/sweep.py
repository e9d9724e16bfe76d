"""`lta sweep`: a grid of gin bindings -> jobs, run here or printed; tables.

  lta sweep --mode=local --workdir=/tmp/sweep \\
    --base_command="lta eval --gin_file=runs/eval.gin ..." \\
    --grid='LAMBDA=[0.3, 0.5, 0.7]' --grid='run_eval.space=["factor", "delta"]' \\
    --output_binding=run_eval.output_dir
runs every job one after another, then writes /tmp/sweep/sweep.md and .csv.
--mode=print prints the commands instead (--prefix="launch/tpu_vm.sh run
--name N --zone Z --" puts a launcher in front); --mode=collect builds the
table once the printed jobs have run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from lta import sweep_launcher


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="lta sweep", description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--mode", choices=("local", "print", "collect"),
                 default="local")
  p.add_argument("--workdir", required=True,
                 help="one output dir per job under it, and the table")
  p.add_argument("--base_command", help="the command every job runs")
  p.add_argument("--grid", action="append", default=[],
                 help="NAME=[v1, v2, ...], repeatable")
  p.add_argument("--output_binding", default="run_eval.output_dir",
                 help="the gin binding that takes each job's output dir")
  p.add_argument("--prefix", default="",
                 help="printed before each command in --mode=print")
  p.add_argument("--metric", default="rouge2",
                 help="the score collected from each scores.json")
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  if args.mode != "collect":
    if not args.base_command or not args.grid:
      print("lta sweep: --base_command and at least one --grid are required",
            file=sys.stderr)
      return 2
    jobs = sweep_launcher.expand(args.base_command,
                                 sweep_launcher.parse_grid(args.grid),
                                 args.workdir, args.output_binding)
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
  sys.exit(main())
