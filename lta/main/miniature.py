"""Runs the miniature reproduction: the pipeline over seeds, with a verdict.

Runs the paper's pipeline (`lta.pipeline`) from nothing for several seeds on
a synthetic world and aggregates the seeds into a table, plots, a JSON of
every number and a verdict (docs/miniature.md):

  lta miniature --gin_file=experiments/miniature.gin

With no --gin_file, experiments/miniature.gin is used. Gin flags override it,
e.g. --gin.MiniatureConfig.seeds="(0, 1, 2, 3, 4)". Also
`python -m lta.main.miniature`.
"""

from __future__ import annotations

import shlex
import sys
from typing import Sequence

from lta import gin_cli
from lta.main import runner

DEFAULT_GIN_FILES = ("experiments/miniature.gin",)
RUN_FILES = DEFAULT_GIN_FILES
USES_TENSORFLOW = True


def main(argv: Sequence[str]) -> int:
  # pylint: disable=g-import-not-at-top  (`lta miniature --help` needs no JAX)
  from lta import miniature
  from lta import pipeline
  from lta.model.config import T5Config
  from lta.peft.config import AdapterConfig
  argv = list(argv)
  if not any(a.startswith("--gin_file") for a in argv):
    argv = [f"--gin_file={f}" for f in DEFAULT_GIN_FILES] + argv
  gin_cli.parse_and_configure(argv)
  miniature.run_miniature(
      miniature.MiniatureConfig(), pipeline.PipelineConfig(), T5Config(),
      AdapterConfig(), command=shlex.join(["lta", "miniature", *argv]))
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
