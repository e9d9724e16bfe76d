"""Random weights of a decoder-only HF model, made once by transformers.

The decoder-only benches (bench_decoder_train.py, bench_decoder_decode.py)
give lta and the HF peer the SAME weights: this script builds
`AutoModelForCausalLM.from_config` (e.g. Qwen2ForCausalLM) from a
config.json that lta wrote (lta.checkpoints.hf_decoder.config_to_hf),
with transformers' own initialisation under a fixed seed, and saves it with
`save_pretrained` (safetensors); lta imports it with
lta.checkpoints.hf_decoder.load_hf_decoder. Run under the HF peer (it
re-runs itself under .venv-hf, `make hf-env`):

  .venv-hf/bin/python bench/hf_random_weights.py --model_dir DIR [--seed 0]

DIR holds config.json on entry and the model on exit. The embedding row
(and untied head row) of eos is zeroed, so eos's logit is exactly 0 while
the largest of the other random logits is positive: greedy decoding never
stops early and every row decodes the full length.
"""

from __future__ import annotations

import argparse

import hf_peer  # bench/, next to this file

if __name__ == "__main__":
  hf_peer.run_under_peer()

# pylint: disable=g-import-not-at-top,wrong-import-position
import torch
import transformers


def make(model_dir: str, seed: int) -> None:
  config = transformers.AutoConfig.from_pretrained(model_dir)
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(
      config, dtype=torch.float32)
  eos = config.eos_token_id
  with torch.no_grad():
    model.get_input_embeddings().weight[eos] = 0.0
    model.get_output_embeddings().weight[eos] = 0.0  # the same when tied
  model.save_pretrained(model_dir, safe_serialization=True)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model_dir", required=True,
                 help="directory with config.json; the model is saved here")
  p.add_argument("--seed", type=int, default=0)
  flags = p.parse_args(argv)
  make(flags.model_dir, flags.seed)
  print(f"saved {flags.model_dir}", flush=True)


if __name__ == "__main__":
  main()
