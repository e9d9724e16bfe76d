"""Composes adapter checkpoints (the paper's Eq. 1-4, TIES, DARE) into one.

Configured by gin/runs/merge.gin (its header, with an example, is in
`lta merge --help`). Writes run_merge.output_dir/adapter. --overwrite
replaces the adapter (and model) of a non-empty output_dir, like
--gin.run_merge.overwrite=True. Also `python -m lta.cli.merge`.
"""

from __future__ import annotations

import sys
from typing import Sequence

from lta.cli import gin_flags as gin_cli
from lta.cli import runner

RUN_FILES = ("runs/merge.gin",)

OVERWRITE_FLAG = "--overwrite"


def main(argv: Sequence[str]) -> int:
  from lta.jobs import merge as merge_job  # pylint: disable=g-import-not-at-top
  argv = list(argv)
  overwrite = OVERWRITE_FLAG in argv
  gin_cli.parse_and_configure([a for a in argv if a != OVERWRITE_FLAG],
                              entries=[merge_job.run_merge])
  merge_job.run_merge(**({"overwrite": True} if overwrite else {}))
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
