"""Runs the miniature reproduction: the pipeline over seeds, with a verdict.

Runs the paper's pipeline (`lta.pipeline.run`) from nothing for several seeds on
a synthetic world and aggregates the seeds into a table, plots, a JSON of
every number and a verdict (docs/miniature.md):

  lta miniature --gin_file=experiments/miniature_large.gin

With no --gin_file, experiments/miniature_large.gin is used (four targets,
five seeds with their own bases, paired intervals); experiments/miniature.gin
is the first, smaller miniature. Gin flags override it,
e.g. --gin.MiniatureConfig.seeds="(0, 1, 2, 3, 4)". Also
`python -m lta.cli.miniature`.
"""

from __future__ import annotations

import shlex
import sys
from typing import Sequence

from lta.cli import gin_flags as gin_cli
from lta.cli import runner

DEFAULT_GIN_FILES = ("experiments/miniature_large.gin",)
RUN_FILES = DEFAULT_GIN_FILES
USES_TENSORFLOW = True


def main(argv: Sequence[str]) -> int:
  # pylint: disable=g-import-not-at-top  (`lta miniature --help` needs no JAX)
  from lta.jobs import miniature
  from lta.pipeline import run as pipeline
  from lta.adapters.config import AdapterConfig
  argv = gin_cli.with_default_files(argv, DEFAULT_GIN_FILES)
  gin_cli.parse_and_configure(argv)
  miniature.run_miniature(
      miniature.MiniatureConfig(), pipeline.PipelineConfig(),
      pipeline.base_model_config(),
      AdapterConfig(), command=shlex.join(["lta", "miniature", *argv]))
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
