"""Runs the paper's whole pipeline end to end (the main job).

With no flags it runs on CPU on embedded defaults (a synthetic world, the
tiny model, a vocabulary trained on the fly):

  lta pipeline

Real data and a real base model are gin bindings, e.g.

  lta pipeline --gin_file=models/mt5_base.gin --gin_file=runs/pipeline.gin \\
    --gin.PipelineConfig.initial_checkpoint_path=\\"/data/mt5-base\\" \\
    --gin.PipelineConfig.vocab_path=\\"/data/mt5/sentencepiece.model\\" \\
    --gin.PipelineConfig.xlsum_manual_dir=\\"/data/xlsum\\" \\
    --gin.PipelineConfig.mc4_local_dir=\\"/data/mc4\\"

Also `python -m lta.cli.pipeline`.
"""

from __future__ import annotations

import sys
from typing import Sequence

from lta.cli import gin_flags as gin_cli
from lta.cli import runner

DEFAULT_GIN_FILES = ("models/tiny.gin", "peft/lora_r4.gin",
                     "runs/pipeline.gin")
RUN_FILES = ("runs/pipeline.gin",)
USES_TENSORFLOW = True


def main(argv: Sequence[str]) -> int:
  # pylint: disable=g-import-not-at-top  (`lta pipeline --help` needs no JAX)
  import tensorflow_datasets as tfds
  from lta.pipeline import run as pipeline
  from lta.adapters.config import AdapterConfig
  argv = gin_cli.with_default_files(argv, DEFAULT_GIN_FILES)
  gin_cli.parse_and_configure(argv)
  tfds.disable_progress_bar()  # the stage banners are the progress display
  pipeline.run_pipeline(pipeline.PipelineConfig(),
                        pipeline.base_model_config(),
                        AdapterConfig())
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
