"""Writes the paper's tables and Figure 2 from `lta eval`, `lta pipeline` runs.

  lta report $RUNS/eval/table1_add $RUNS/eval/table1_add_subtract \\
    --output_dir=$RUNS/report/table1

reads each directory's results.json and writes report.md, report.tex
(booktabs), one CSV per table and, for single-source compositions with
their baselines, the paper's Figure 2 (figure2_<composition>.png).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from lta.cli import runner
from lta.eval import methods


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="lta report", description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("dirs", nargs="+", metavar="DIR",
                 help="`lta eval` or `lta pipeline` output directories "
                      "(each holds results.json)")
  p.add_argument("--output_dir", required=True,
                 help="where the report files are written")
  p.add_argument("--keep_task_vectors", action="store_true",
                 help="one row per single-language task vector instead of "
                      "their best per target, "
                      f"{methods.label('baseline_best')!r}")
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  # pylint: disable=g-import-not-at-top  (`lta report --help` needs no JAX)
  from lta.jobs import report as report_job
  # A mistake (LtaError) is printed in one line by lta.cli.runner.
  paths = report_job.run_report(args.dirs, args.output_dir,
                                args.keep_task_vectors)
  with open(paths["report.md"], encoding="utf-8") as f:
    print(f.read())
  for path in sorted(paths.values()):
    print(f"Wrote {path}")
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
