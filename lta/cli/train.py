"""Trains an adapter (or fine-tunes mT5) on a seqio task; resumable.

  lta train --gin_file=models/mt5_base.gin --gin_file=peft/lora_r4.gin \\
    --gin_file=runs/train_adapter.gin --gin.MODEL_DIR=\\"/tmp/run\\" \\
    --gin.MIXTURE_OR_TASK_NAME=\\"xlsum.en\\" ...

Only the adapter (or the TRAINABLE parameters) is trained and checkpointed;
a run finding checkpoints in MODEL_DIR resumes from the latest one. The
trained adapter is exported to MODEL_DIR/adapter for `lta merge` and
`lta eval`. Also `python -m lta.cli.train`.

Exit codes: 0 finished,
75 (EX_TEMPFAIL) stopped by SIGTERM or Ctrl-C after saving a checkpoint:
run the same command to resume; 2 bad flags or bindings.
"""

from __future__ import annotations

import sys
from typing import Sequence

import gin

from lta import errors
from lta.cli import gin_flags as gin_cli
from lta.cli import runner

RUN_FILES = ("runs/train_adapter.gin", "runs/full_finetune.gin",
             "runs/intermediate_tuning.gin")
USES_TENSORFLOW = True
READS_TFDS = True


def check_adapter_bound(configurable: str = "train") -> None:
  """A run that builds an AdapterConfig needs a gin/peft file to say which."""
  try:
    adapter = gin.query_parameter(f"{configurable}.adapter")
  except ValueError:
    return
  if adapter is None:
    return
  try:
    gin.query_parameter("AdapterConfig.kind")
  except ValueError:
    raise errors.ConfigError(
        "The adapter config is required: add an adapter file, e.g. "
        "--gin_file=peft/lora_r4.gin or --gin_file=peft/krona_32x16.gin, or "
        "bind --gin.AdapterConfig.kind=\\\"lora\\\"") from None


def main(argv: Sequence[str]) -> int:
  # pylint: disable=g-import-not-at-top  (`lta train --help` needs no JAX)
  from absl import logging
  from lta.train import preemption
  from lta.train import loop as trainer  # registers the configurables the run files bind
  # Progress goes to stdout; absl INFO would bury it under orbax's logs.
  logging.set_verbosity(logging.WARNING)
  gin_cli.parse_and_configure(argv, entries=[trainer.train],
                              reads_tfds=READS_TFDS)
  check_adapter_bound()
  result = trainer.train()
  if result.preempted:
    return preemption.EXIT_PREEMPTED  # checkpointed; rerun to resume
  print(f"Finished at step {result.step}", flush=True)
  return 0


if __name__ == "__main__":
  runner.run_as_script(sys.modules[__name__])
