"""HF transformers greedy `generate` on an exported checkpoint; prints JSON.

The HF side of bench/bench_decode.py (mT5) and bench/bench_decoder_decode.py
(decoder-only: config.json names a causal LM), run under a separate interpreter with
torch + transformers (the lta venv has no torch): the repository's .venv-hf
(`make hf-env`), which it switches to when started under another python.

  .venv-hf/bin/python bench/hf_decode.py --model_dir DIR \
      --inputs inputs.npy --decode 64 --runs 5 --out ids.npy

The whole `generate` call is timed (encoder or prompt prefill included,
like lta's predict_batch). Every row decodes exactly --decode tokens:
min_new_tokens = max_new_tokens keeps EOS out. A causal LM takes LEFT-padded
prompts and their --mask (.npy, 1 = real token). Output: one line
`RESULT {json}` with the run times in seconds, and the generated ids (start
token or prompt dropped) in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import hf_peer  # bench/, next to this file

if __name__ == "__main__":
  hf_peer.run_under_peer()

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import torch
import transformers


def _flags(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model_dir", required=True,
                 help="config.json + model.safetensors (save_hf_checkpoint)")
  p.add_argument("--inputs", required=True,
                 help=".npy int array (batch, input length); no padding, "
                 "or left padding with --mask (causal LMs)")
  p.add_argument("--mask", help=".npy (batch, input length) of a causal "
                 "LM's left-padded prompts; default all real")
  p.add_argument("--decode", type=int, default=64, help="new tokens per row")
  p.add_argument("--runs", type=int, default=5, help="timed runs")
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  p.add_argument("--out", help="where to save the last run's ids (.npy)")
  return p.parse_args(argv)


def main(argv=None) -> None:
  flags = _flags(argv)
  torch.set_num_threads(flags.threads)
  ids = np.load(flags.inputs)
  seq2seq = transformers.AutoConfig.from_pretrained(
      flags.model_dir).is_encoder_decoder
  if ids.ndim != 2 or (seq2seq and (ids <= 0).any()):
    raise ValueError(f"{flags.inputs}: expected a (batch, length) array of "
                     f"ids > 0 (no padding), got shape {ids.shape}")
  if seq2seq:
    model = transformers.MT5ForConditionalGeneration.from_pretrained(
        flags.model_dir)
  else:
    model = transformers.AutoModelForCausalLM.from_pretrained(
        flags.model_dir, dtype=torch.float32)
  model.eval()
  input_ids = torch.from_numpy(ids.astype(np.int64))
  mask = (torch.from_numpy(np.load(flags.mask).astype(np.int64))
          if flags.mask else torch.ones_like(input_ids))
  kwargs = dict(input_ids=input_ids, attention_mask=mask, do_sample=False,
                num_beams=1, use_cache=True, max_new_tokens=flags.decode,
                min_new_tokens=flags.decode,
                pad_token_id=model.config.pad_token_id)

  def run():
    with torch.inference_mode():
      return model.generate(**kwargs)

  for _ in range(flags.warmup):
    run()
  times = []
  for _ in range(flags.runs):
    start = time.perf_counter()
    out = run()
    times.append(time.perf_counter() - start)
  # Drop decoder_start_token_id (seq2seq) or the prompt (causal LM).
  out = out[:, 1 if seq2seq else ids.shape[1]:].numpy()
  if out.shape != (ids.shape[0], flags.decode):
    raise RuntimeError(f"generate returned ids of shape {tuple(out.shape)}; "
                       f"expected {(ids.shape[0], flags.decode)}")
  if flags.out:
    np.save(flags.out, out)
  result = {
      "times": times, "median_s": statistics.median(times),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "backend": f"torch {torch.__version__} ({torch.get_num_threads()} "
                 f"threads), transformers {transformers.__version__}"}
  print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
