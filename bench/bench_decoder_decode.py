"""Decoder-only greedy decoding tokens/s: lta base, merged LoRA, HF generate.

The real Qwen2.5-0.5B shape (gin/models/qwen2_5_0_5b.gin) with random
weights that transformers makes once (bench/decoder_bench.py), the same
left-padded prompts on both sides:

  make bench-decoder-decode                          # batch 4, prompts <= 64, 32 new tokens
  make bench-decoder-decode BENCH_ARGS="--pin_cpu 1"
  .venv/bin/python bench/bench_decoder_decode.py --variants base,merged,unmerged,hf

Variants (as bench/bench_decode.py, whose timing and table this reuses):
  lta base       {'params': W}                        jit(predict_batch)
  lta merged     {'params': W + scale*A@B}            same compiled function
  lta unmerged   {'params': W, 'adapters': {A, B}}    adapters applied per call
  HF generate    AutoModelForCausalLM.from_pretrained on the same files;
                 generate(greedy, num_beams=1, use_cache=True,
                 min_new_tokens=max_new_tokens), bench/hf_decode.py under
                 --hf_python (default: the repository's .venv-hf).
LoRA: r=--rank on q, k, v, o of every layer, lora_b drawn (not zero).

Prompts: --batch rows of lengths --prompt, 3/4, 1/2, 1/4 of it, ... each
after the start token, LEFT-padded (DecoderOnlyModel.prompt_batch; HF gets
the same ids and attention mask). A timed call is the whole predict_batch /
generate: prompt prefill and --decode greedy steps; tokens/s = batch *
decode / seconds. eos's embedding row is zero (bench/hf_random_weights.py),
so no row stops early; the script checks that lta emitted no eos and
prints how many ids lta and HF share. Rounds, threads and load as in
bench/fair_rounds.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time

import numpy as np

import bench_decode  # bench/, next to this file; puts the repository on sys.path
import decoder_bench
import fair_rounds
import hf_peer
import host_info

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-order

from lta.adapters.config import AdapterConfig  # noqa: E402
from lta.adapters.deltas import merge_into_base  # noqa: E402
from lta.models.contract import DecodingConfig  # noqa: E402
from lta.models.decoder.network import DecoderOnly  # noqa: E402
from lta.models.decoder_only import DecoderOnlyModel  # noqa: E402

REPO = decoder_bench.REPO


def _flags(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  decoder_bench.add_model_flags(p)
  p.add_argument("--variants", default="base,merged,hf",
                 help=f"any of {','.join(bench_decode.VARIANTS)}")
  p.add_argument("--rank", type=int, default=8)
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--prompt", type=int, default=64,
                 help="longest prompt; rows get 1, 3/4, 1/2, 1/4 of it")
  p.add_argument("--decode", type=int, default=32, help="new tokens per row")
  p.add_argument("--runs", type=int, default=3, help="timed calls each")
  p.add_argument("--warmup", type=int, default=1,
                 help="untimed calls after compilation")
  fair_rounds.add_flags(p, rounds=3)
  hf_peer.add_flag(p)
  p.add_argument("--json_out", help="also write the results here")
  p.add_argument("--worker", help=argparse.SUPPRESS)  # a directory
  p.add_argument("--model_dir", help=argparse.SUPPRESS)
  flags = p.parse_args(argv)
  bench_decode.check_variants(flags)
  return flags


def _prompts(flags, config) -> dict[str, np.ndarray]:
  """Left-padded prompt ids and mask, the same for lta and HF."""
  rng = np.random.default_rng(0)
  fractions = (1.0, 0.75, 0.5, 0.25)
  rows = [rng.integers(3, config.vocab_size, max(
      1, int(flags.prompt * fractions[i % len(fractions)])))
          for i in range(flags.batch)]
  model = DecoderOnlyModel(DecoderOnly(config))
  return model.prompt_batch(rows, flags.prompt)


def _lta_worker(flags) -> None:
  """One round's lta side: every lta variant, timed round-robin."""
  config = decoder_bench.model_config(flags)
  params = jax.device_put(decoder_bench.load_weights(flags.model_dir,
                                                     config))
  adapter = AdapterConfig(kind="lora", rank=flags.rank,
                          alpha=float(flags.rank))
  lora_model = DecoderOnlyModel(DecoderOnly(config, adapter))
  adapters = bench_decode.random_lora_b(jax.jit(
      lambda k: lora_model.init_unboxed(k)["adapters"])(jax.random.PRNGKey(0)))
  all_vars = {"base": {"params": params},
              "merged": {"params": jax.device_put(
                  merge_into_base(params, adapters, adapter))},
              "unmerged": {"params": params, "adapters": adapters}}
  base_model = DecoderOnlyModel(DecoderOnly(config))
  decoding = DecodingConfig(method="greedy", max_decode_length=flags.decode)
  prompts = {k: jax.device_put(v) for k, v in dict(np.load(
      os.path.join(flags.worker, "prompts.npz"))).items()}

  def compiled(model):
    return jax.jit(lambda v, b: model.predict_batch(v, b, decoding))

  base_fn = compiled(base_model)  # merged reuses base's compiled function
  fns = {"base": base_fn, "merged": base_fn, "unmerged": compiled(lora_model)}
  prefill = jax.jit(lambda v, b: base_model.initial_cache(
      v, b["prompt_tokens"], b["prompt_mask"], flags.decode))
  names = ["base"] + [n for n in flags.variants if n not in ("base", "hf")]
  calls = {n: (lambda n=n: fns[n](all_vars[n], prompts)) for n in names}
  calls["prefill"] = lambda: prefill(all_vars["base"], prompts)
  times, ids = bench_decode.time_round_robin(calls, flags.runs, flags.warmup)
  del ids["prefill"]
  bench_decode.check_full_length(ids, config.eos_token_id)
  np.savez(os.path.join(flags.worker, "lta_ids.npz"), **ids)
  print("RESULT " + json.dumps({
      "times": times, "peak_rss_mb": host_info.peak_rss_mb(),
      "backend": f"jax {jax.__version__} {jax.default_backend()}, XLA_FLAGS="
                 f"'{os.environ.get('XLA_FLAGS', '')}'"}), flush=True)


def _hf_command(flags, tmp: str, model_dir: str) -> list[str]:
  return [flags.hf_python, os.path.join(REPO, "bench", "hf_decode.py"),
          f"--model_dir={model_dir}", f"--inputs={tmp}/prompt_tokens.npy",
          f"--mask={tmp}/prompt_mask.npy", f"--decode={flags.decode}",
          f"--runs={flags.runs}", f"--warmup={flags.warmup}",
          f"--threads={flags.threads}", f"--out={tmp}/hf_ids.npy"]


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  if flags.worker:
    _lta_worker(flags)
    return 0
  config = decoder_bench.model_config(flags)
  command = shlex.join([os.path.relpath(sys.executable, REPO),
                        os.path.relpath(os.path.abspath(__file__), REPO),
                        *argv])
  print(f"command: {command}")
  print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  print(f"model: {decoder_bench.describe(config)}; random float32 weights "
        f"made by transformers, the same on both sides; LoRA r={flags.rank} "
        "on q, k, v, o of every layer")
  print(f"work: batch {flags.batch}, left-padded prompts of at most "
        f"{flags.prompt} tokens + start token, greedy decode {flags.decode} "
        f"tokens per row (eos never argmax); each call = prefill + decode; "
        f"per round and side the median of {flags.runs} after "
        f"{flags.warmup} warm-up, in a fresh process; {flags.rounds} rounds "
        f"({flags.order})")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), python "
        f"{platform.python_version()}; {fair_rounds.settings(flags)}; load "
        f"avg {host_info.load()} at start", flush=True)
  sides = ["lta"] + (["hf"] if "hf" in flags.variants else [])
  with tempfile.TemporaryDirectory(prefix="lta-bench-") as tmp, \
      decoder_bench.weights(flags, config, fair_rounds.worker_env(
          flags, True)) as model_dir:
    prompts = _prompts(flags, config)
    np.savez(os.path.join(tmp, "prompts.npz"), **prompts)
    for name, array in prompts.items():
      np.save(os.path.join(tmp, f"{name}.npy"), array)

    def run_one(side):
      torch_side = side == "hf"
      cmd = (_hf_command(flags, tmp, model_dir) if torch_side else
             [sys.executable, os.path.abspath(__file__), *argv,
              f"--worker={tmp}", f"--model_dir={model_dir}"])
      return fair_rounds.run_worker(fair_rounds.worker_command(flags, cmd),
                                    fair_rounds.worker_env(flags, torch_side),
                                    REPO)

    rounds, thrown = fair_rounds.run_rounds(sides, run_one, flags)
    lta_ids = dict(np.load(os.path.join(tmp, "lta_ids.npz")))
    hf_ids = (np.load(os.path.join(tmp, "hf_ids.npy")) if "hf" in sides
              else None)
  rows = bench_decode.report(flags, rounds, flags.batch * flags.decode,
                             prefill="prompt prefill")
  bench_decode.summarize(
      flags, command, rounds, thrown, rows, lta_ids, hf_ids,
      model=config.to_dict(),
      lta_base_ids_equal_hf=None if hf_ids is None else
      bool(np.array_equal(lta_ids["base"], hf_ids)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
