"""Runs the learning-rate miniature: full fine-tuning and LoRA over rates and seeds.

Fine-tunes one pre-trained tiny base on the synthetic world's source
language at every learning rate of a grid, fully and with LoRA, over
several seeds, and reports the targets' wrong-language rate and task score
with a verdict (docs/lr_miniature.md):

  lta lr-miniature --gin_file=experiments/lr_miniature.gin

With no --gin_file, experiments/lr_miniature.gin is used. Gin flags override
it, e.g. --gin.LearningRateStudyConfig.seeds="(0, 1, 2, 3)". Also
`python -m lta.cli.lr_miniature`.
"""

from __future__ import annotations

import shlex
import sys
from typing import Sequence

from lta.cli import gin_flags as gin_cli
from lta.cli import runner

DEFAULT_GIN_FILES = ("experiments/lr_miniature.gin",)
RUN_FILES = DEFAULT_GIN_FILES
USES_TENSORFLOW = True


def main(argv: Sequence[str]) -> int:
  # pylint: disable=g-import-not-at-top  (`lta lr-miniature --help` needs no JAX)
  from lta.adapters.config import AdapterConfig
  from lta.jobs import lr_miniature
  from lta.pipeline import run as pipeline
  argv = gin_cli.with_default_files(argv, DEFAULT_GIN_FILES)
  gin_cli.parse_and_configure(argv)
  lr_miniature.run_study(
      lr_miniature.LearningRateStudyConfig(), pipeline.PipelineConfig(),
      pipeline.base_model_config(), AdapterConfig(),
      command=shlex.join(["lta", "lr-miniature", *argv]))
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
