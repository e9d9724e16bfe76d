"""experiments/decoder_only.gin switches `lta pipeline` and `lta miniature`.

Parses each command's gin files as the command does, then asks the pipeline
what base it builds and which tasks it trains (the run itself:
tests/test_decoder_only_e2e.py, slow, and tests/tasks/test_decoder_only_e2e_tiny.py).
"""

import gin
import pytest

from lta.cli import gin_flags
from lta.cli import gin_registry
from lta.models.decoder.config import DecoderConfig
from lta.models.mt5.config import T5Config
from lta.pipeline import run as pipeline

PIPELINE = ("models/tiny.gin", "peft/lora_r4.gin", "runs/pipeline.gin")
MINIATURE = ("experiments/miniature.gin",)
SWITCH = "experiments/decoder_only.gin"


def _base_config(files):
  gin_registry.register_all()
  gin.clear_config()
  try:
    gin_flags.parse_and_configure([f"--gin_file={f}" for f in files])
    return pipeline.base_model_config()
  finally:
    gin.clear_config()


@pytest.mark.parametrize("files,vocab_size", [(PIPELINE, 512),
                                              (MINIATURE, 1000)])
def test_the_switch_makes_the_base_decoder_only(files, vocab_size):
  before = _base_config(files)
  assert isinstance(before, T5Config) and before.vocab_size == vocab_size
  after = _base_config(files + (SWITCH,))
  assert isinstance(after, DecoderConfig)
  assert after.vocab_size == vocab_size  # the vocabulary the pipeline trains
  assert pipeline.task_name(after, "pt") == "xlsum_prompt.pt"
  assert pipeline.task_name(after, "pt", language_vector=True) == (
      "mc4_decoder_prefix_lm.pt")
  assert pipeline.task_name(before, "pt") == "xlsum.pt"
