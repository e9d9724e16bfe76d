"""Host memory of `lta train`'s set-up with an HF base model (issue 18).

Loads an HF decoder-only checkpoint (lta.checkpoints.base_model, as
INITIAL_CHECKPOINT_PATH does), then builds the LoRA train state on one
device with lta.train.steps.init_variables and create_state, the calls
`lta train` makes. Prints the peak resident memory after the load and after
the set-up, and the model's size:

  python bench/bench_setup_memory.py --weights_dir W   # W: an HF model dir

Run it on another tree (PYTHONPATH=TREE) to compare versions of the
library; each run is a fresh process, so peaks do not carry over.
"""

import argparse
import json
import resource
import sys

import decoder_bench  # bench/, next to this file


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--weights_dir", required=True,
                 help="an HF decoder-only model directory")
  p.add_argument("--rank", type=int, default=8)
  flags = p.parse_args(argv)
  # pylint: disable=g-import-not-at-top
  import jax
  import optax
  from lta.adapters.config import AdapterConfig
  from lta.checkpoints import base_model
  from lta.models.decoder.network import DecoderOnly
  from lta.models.decoder_only import DecoderOnlyModel

  start_mb = _peak_mb()
  config, params = base_model.load_base_model(flags.weights_dir)
  loaded_mb = _peak_mb()
  model_mb = sum(x.nbytes for x in jax.tree.leaves(params)) / 2**20
  model = DecoderOnlyModel(DecoderOnly(config, AdapterConfig(
      kind="lora", rank=flags.rank, alpha=float(flags.rank))))
  state = decoder_bench.train_state(model, optax.adamw(1e-4), params)
  del params
  jax.block_until_ready(state)
  print(json.dumps({"model_mb": round(model_mb, 1),
                    "start_peak_mb": round(start_mb, 1),
                    "load_peak_mb": round(loaded_mb, 1),
                    "setup_peak_mb": round(_peak_mb(), 1)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
