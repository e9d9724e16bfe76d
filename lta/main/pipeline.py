"""`lta pipeline` / `python -m lta.main.pipeline`: the README's main job.

With no flags it runs the paper's pipeline on CPU on embedded defaults (a
synthetic world, the tiny model, a vocabulary trained on the fly):

  python -m lta.main.pipeline

Real data and a real base model are gin bindings, e.g.

  lta pipeline --gin_file=models/mt5_base.gin --gin_file=runs/pipeline.gin \\
    --gin.PipelineConfig.initial_checkpoint_path=\\"/data/mt5-base\\" \\
    --gin.PipelineConfig.vocab_path=\\"/data/mt5/sentencepiece.model\\" \\
    --gin.PipelineConfig.xlsum_manual_dir=\\"/data/xlsum\\" \\
    --gin.PipelineConfig.mc4_local_dir=\\"/data/mc4\\"
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

# Quiet TensorFlow's C++ start-up logs; must precede its import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lta import gin_cli
from lta import pipeline
from lta.model.config import T5Config
from lta.peft.config import AdapterConfig

DEFAULT_GIN_FILES = ("models/tiny.gin", "peft/lora_r4.gin",
                     "runs/pipeline.gin")


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not any(a.startswith("--gin_file") for a in argv):
    argv = [f"--gin_file={f}" for f in DEFAULT_GIN_FILES] + argv
  gin_cli.parse_and_configure(argv)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()  # the stage banners are the progress display
  pipeline.run_pipeline(pipeline.PipelineConfig(), T5Config(),
                        AdapterConfig())
  return 0


if __name__ == "__main__":
  sys.exit(main())
