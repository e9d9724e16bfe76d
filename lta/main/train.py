"""`lta train` / `python -m lta.main.train`: gin flags in, trained adapter out.

  python -m lta.main.train --gin_file=models/mt5_small.gin \
    --gin_file=peft/lora_r4.gin --gin_file=runs/train_adapter.gin \
    --gin.MODEL_DIR=\"/tmp/run\" ...

See gin/runs/*.gin for each run's required bindings. Exit codes: 0 finished,
75 (EX_TEMPFAIL) stopped by SIGTERM or Ctrl-C after saving a checkpoint:
run the same command to resume; 2 bad flags or bindings.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from absl import logging
import gin

from lta import gin_cli
from lta import preemption
from lta import trainer  # registers the configurables the run files bind


def check_adapter_bound() -> None:
  """A run that builds an AdapterConfig needs a gin/peft file to say which."""
  try:
    adapter = gin.query_parameter("train.adapter")
  except ValueError:
    return
  if adapter is None:
    return
  try:
    gin.query_parameter("AdapterConfig.kind")
  except ValueError as e:
    raise ValueError(
        "The adapter config is required: add an adapter file, e.g. "
        "--gin_file=peft/lora_r4.gin or --gin_file=peft/krona_32x16.gin, or "
        "bind --gin.AdapterConfig.kind=\\\"lora\\\"") from e


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  # Progress goes to stdout; absl INFO would bury it under orbax's logs.
  logging.set_verbosity(logging.WARNING)
  try:
    gin_cli.parse_and_configure(argv)
    check_adapter_bound()
  except (ValueError, FileNotFoundError) as e:
    print(f"lta train: {e}", file=sys.stderr)
    return 2
  result = trainer.train()
  if result.preempted:
    return preemption.EXIT_PREEMPTED  # checkpointed; rerun to resume
  print(f"Finished at step {result.step}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
