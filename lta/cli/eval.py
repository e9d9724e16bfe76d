"""Decodes and scores tasks for the base model, an adapter or a composition.

Configured by gin/runs/eval.gin (its header, with an example, is in
`lta eval --help`). With several λ the best one per target is chosen on
validation and reported on test, next to the task-vector baseline. Writes
predictions, scores and tables to run_eval.output_dir. Also
`python -m lta.cli.eval`.
"""

from __future__ import annotations

import sys
from typing import Sequence

from lta.cli import gin_flags as gin_cli
from lta.cli import runner

RUN_FILES = ("runs/eval.gin",)
USES_TENSORFLOW = True
READS_TFDS = True


def main(argv: Sequence[str]) -> int:
  from lta.jobs import evaluate as eval_job  # pylint: disable=g-import-not-at-top
  gin_cli.parse_and_configure(argv, entries=[eval_job.run_eval],
                              reads_tfds=READS_TFDS)
  eval_job.run_eval()
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
