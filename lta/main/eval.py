"""Decodes and scores tasks for the base model, an adapter or a composition.

Configured by gin/runs/eval.gin (its header, with an example, is in
`lta eval --help`). With several λ the best one per target is chosen on
validation and reported on test, next to the task-vector baseline. Writes
predictions, scores and tables to run_eval.output_dir. Also
`python -m lta.main.eval`.
"""

from __future__ import annotations

import sys
from typing import Sequence

from lta import gin_cli
from lta.main import runner

RUN_FILES = ("runs/eval.gin",)
USES_TENSORFLOW = True
READS_TFDS = True


def main(argv: Sequence[str]) -> int:
  from lta import eval_job  # pylint: disable=g-import-not-at-top
  gin_cli.parse_and_configure(argv, entries=[eval_job.run_eval],
                              reads_tfds=READS_TFDS)
  eval_job.run_eval()
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
