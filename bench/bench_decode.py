"""Greedy decode tokens/s: lta base, merged LoRA, unmerged LoRA, HF generate.

One model shape for all four (mT5-small by default, random weights, LoRA
r=4 on q, k, v, o of every attention), the same input ids, in one run:

  .venv/bin/python bench/bench_decode.py --quick         # ~1 min
  .venv/bin/python bench/bench_decode.py                 # mT5-small, 250k vocab
  .venv/bin/python bench/bench_decode.py --vocab 32128 --inputs 256

Variants:
  lta base       {'params': W}                        jit(predict_batch)
  lta merged     {'params': W + scale*A@B}            same compiled function
  lta unmerged   {'params': W, 'adapters': {A, B}}    adapters applied per call
  HF generate    MT5ForConditionalGeneration.from_pretrained on W exported with
                 save_hf_checkpoint; generate(greedy, num_beams=1,
                 use_cache=True); bench/hf_decode.py under --hf_python
                 (default: the repository's .venv-hf; `make hf-env`).

Each timed call is the whole predict_batch / generate: encoder, cache prefill
and --decode greedy steps; tokens/s = batch * decode / seconds. The lta
variants are compiled once, warmed up, then timed round-robin (one call of
each per round, rotating the order) so load from other processes hits
them alike; HF is timed in its own process after them. Reported: median,
min and max of --runs calls, and throughput relative to lta base: as a
ratio of medians; (lta variants) as the median over rounds of the
per-round ratio, which is steadier when the load changes mid-run; and as a
ratio of the fastest calls, the least disturbed by other processes.

Full length: the column of the output kernel for EOS (id 1) is zeroed, so
its logit is exactly 0 while the largest of the other (random, roughly
N(0, 1)) logits is positive: EOS is never the argmax, and the script checks
that no lta row emitted it. HF additionally gets min_new_tokens =
max_new_tokens, which masks EOS. With EOS absent both sides decode the same
sequences; the match rate is printed as a correctness check.

Threads: XLA uses every core; torch gets --threads (default: every core).
torch's OpenMP workers spin-wait by default, which on a machine shared with
other busy processes makes a 2-thread generate 10-20x slower than 1 thread
(measured here: 8.7 s vs 0.37 s for the --quick shape). The HF process
therefore runs with OMP_WAIT_POLICY=PASSIVE (--omp_wait_policy), which
restores the 1-thread speed or better; pass --omp_wait_policy= on a quiet,
dedicated machine to get torch's default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import hf_peer  # bench/, next to this file
import host_info

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402

from lta.checkpoints.hf import save_hf_checkpoint  # noqa: E402
from lta.models.mt5.config import T5Config  # noqa: E402
from lta.models.mt5.network import Transformer  # noqa: E402
from lta.models.contract import DecodingConfig, EncoderDecoderModel  # noqa: E402
from lta.adapters.config import AdapterConfig  # noqa: E402
from lta.adapters.deltas import merge_into_base  # noqa: E402

VARIANTS = ("base", "merged", "unmerged", "hf")
QUICK = dict(vocab=4096, layers=2, batch=2, inputs=64, decode=16, runs=3)


def _flags(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true",
                 help=f"small preset {QUICK}; explicit flags still win")
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--vocab", type=int, default=250112)
  p.add_argument("--d_model", type=int, default=512)
  p.add_argument("--d_ff", type=int, default=1024)
  p.add_argument("--heads", type=int, default=6)
  p.add_argument("--d_kv", type=int, default=64)
  p.add_argument("--layers", type=int, default=8,
                 help="encoder and decoder layers each (HF 4.57 needs equal "
                 "counts to generate with a cache)")
  p.add_argument("--rank", type=int, default=4)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--inputs", type=int, default=512, help="input length")
  p.add_argument("--decode", type=int, default=64, help="tokens per row")
  p.add_argument("--runs", type=int, default=5, help="timed calls each")
  p.add_argument("--warmup", type=int, default=1,
                 help="untimed calls after compilation")
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch threads (XLA uses every core)")
  p.add_argument("--omp_wait_policy", default="PASSIVE",
                 help="OMP_WAIT_POLICY for torch ('' = torch's default); "
                 "see the module docstring")
  hf_peer.add_flag(p)
  p.add_argument("--json_out", help="also write the results here")
  flags = p.parse_args(argv)
  if flags.quick:
    p.set_defaults(**QUICK)
    flags = p.parse_args(argv)
  names = [n for n in flags.variants.split(",") if n]
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown or not names:
    raise ValueError(f"--variants={flags.variants!r}: unknown {unknown}; "
                     f"choose from {VARIANTS}")
  flags.variants = names
  if "hf" in names:  # fail now, not after the lta variants ran
    hf_peer.check_python(flags.hf_python)
  return flags




def _variables(config: T5Config, adapter: AdapterConfig):
  """Random base params with EOS never argmax, and random LoRA factors."""
  lora_model = EncoderDecoderModel(Transformer(config, adapter))
  variables = jax.jit(lora_model.init_unboxed)(jax.random.PRNGKey(0))
  params, adapters = variables["params"], variables["adapters"]
  head = params["decoder"]["logits_dense"]["kernel"]
  params["decoder"]["logits_dense"]["kernel"] = head.at[
      :, config.eos_token_id].set(0.0)
  # lora_b starts at zero; a trained adapter is not, so draw it.
  leaves, treedef = jax.tree_util.tree_flatten_with_path(adapters)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  drawn = [0.02 * jax.random.normal(k, x.shape, x.dtype)
           if jax.tree_util.keystr(path).endswith("['lora_b']") else x
           for (path, x), k in zip(leaves, keys)]
  adapters = jax.tree_util.tree_unflatten(treedef, drawn)
  merged = jax.device_put(merge_into_base(params, adapters, adapter))
  return {"base": {"params": params},
          "merged": {"params": merged},
          "unmerged": {"params": params, "adapters": adapters}}, lora_model


def _time_lta(flags, config, adapter, enc, names):
  """(times, ids, base params) per variant; round-robin after warm-up."""
  all_vars, lora_model = _variables(config, adapter)
  base_model = EncoderDecoderModel(Transformer(config))
  decoding = DecodingConfig(method="greedy", max_decode_length=flags.decode)

  def compiled(model):
    return jax.jit(lambda v, x: model.predict_batch(
        v, {"encoder_input_tokens": x}, decoding))

  base_fn = compiled(base_model)  # merged reuses base's compiled function
  fns = {"base": base_fn, "merged": base_fn, "unmerged": compiled(lora_model)}
  prefill = jax.jit(lambda v, x: base_model.initial_cache(v, x, flags.decode))
  calls = {n: (lambda n=n: fns[n](all_vars[n], enc)) for n in names}
  calls["prefill"] = lambda: prefill(all_vars["base"], enc)
  ids = {}
  for name, call in calls.items():
    start = time.perf_counter()
    ids[name] = jax.block_until_ready(call())
    print(f"  compiled + ran lta {name} in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    for _ in range(flags.warmup):
      jax.block_until_ready(call())
  times = {n: [] for n in calls}
  order = list(calls)
  for i in range(flags.runs):
    # Rotate who goes first so no variant always follows the same one.
    for name in order[i % len(order):] + order[:i % len(order)]:
      call = calls[name]
      start = time.perf_counter()
      jax.block_until_ready(call())
      times[name].append(time.perf_counter() - start)
  del ids["prefill"]
  for name, out in ids.items():
    out = np.asarray(out)
    if (out == config.eos_token_id).any() or (out == 0).all(axis=1).any():
      raise RuntimeError(f"lta {name} emitted EOS; rows would stop early and "
                         "tokens/s would be wrong")
    ids[name] = out
  return times, ids, all_vars["base"]["params"]


def _time_hf(flags, config, params, enc, tmp):
  model_dir = os.path.join(tmp, "hf")
  save_hf_checkpoint(params, config, model_dir)
  np.save(os.path.join(tmp, "inputs.npy"), enc)
  out = os.path.join(tmp, "hf_ids.npy")
  cmd = [flags.hf_python, os.path.join(REPO, "bench", "hf_decode.py"),
         f"--model_dir={model_dir}", f"--inputs={tmp}/inputs.npy",
         f"--decode={flags.decode}", f"--runs={flags.runs}",
         f"--warmup={flags.warmup}", f"--threads={flags.threads}",
         f"--out={out}"]
  env = dict(os.environ)
  if flags.omp_wait_policy:
    env["OMP_WAIT_POLICY"] = flags.omp_wait_policy
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                        env=env)
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):]), np.load(out)
  raise RuntimeError(f"HF generate failed (exit {proc.returncode}):\n"
                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _match(a: np.ndarray, b: np.ndarray) -> str:
  same_rows = int((a == b).all(axis=1).sum())
  return (f"{(a == b).mean():.1%} of tokens, {same_rows}/{a.shape[0]} rows "
          "identical")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  command = shlex.join([os.path.relpath(sys.executable, REPO),
                        os.path.relpath(os.path.abspath(__file__), REPO),
                        *argv])
  config = T5Config(vocab_size=flags.vocab, d_model=flags.d_model,
                    d_ff=flags.d_ff, num_heads=flags.heads, d_kv=flags.d_kv,
                    num_encoder_layers=flags.layers,
                    num_decoder_layers=flags.layers, dropout_rate=0.0,
                    name="mt5-bench")
  adapter = AdapterConfig(kind="lora", rank=flags.rank,
                          alpha=float(flags.rank))
  enc = np.random.default_rng(0).integers(
      2, flags.vocab, (flags.batch, flags.inputs)).astype(np.int32)
  tokens = flags.batch * flags.decode
  print(f"command: {command}")
  print(f"model: mT5-shaped d_model={flags.d_model} d_ff={flags.d_ff} "
        f"heads={flags.heads} d_kv={flags.d_kv} layers={flags.layers}+"
        f"{flags.layers} vocab={flags.vocab}, random weights, float32; LoRA "
        f"r={flags.rank} on q,k,v,o of every attention")
  print(f"work: batch {flags.batch}, inputs {flags.inputs}, greedy decode "
        f"{flags.decode} tokens per row (EOS never argmax); each call = "
        f"encode + prefill + decode; median of {flags.runs} after "
        f"{flags.warmup} warm-up")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), jax "
        f"{jax.__version__} {jax.default_backend()}, python "
        f"{platform.python_version()}; load avg {host_info.load()} at start",
        flush=True)

  # lta base is always timed: it is what every ratio is against.
  lta_names = ["base"] + [n for n in flags.variants if n not in ("base", "hf")]
  hf_backend = load_hf = None
  times, ids, params = _time_lta(flags, config, adapter, enc, lta_names)
  load_lta = host_info.load()
  if "hf" in flags.variants:
    with tempfile.TemporaryDirectory() as tmp:
      result, ids["hf"] = _time_hf(flags, config, params, enc, tmp)
      times["hf"] = result["times"]
      hf_backend = result["backend"]
      load_hf = host_info.load()

  base = statistics.median(times["base"])
  labels = {"base": "lta base", "merged": "lta merged LoRA",
            "unmerged": "lta unmerged LoRA", "hf": "HF generate"}
  rows = []
  print("\n| variant | median s (min-max) | tokens/s | x lta base (medians) "
        "| x lta base (paired) | x lta base (best) |")
  print("|---|---|---|---|---|---|")
  for name in [n for n in VARIANTS if n in times]:
    t = times[name]
    med = statistics.median(t)
    # lta variants ran in the same rounds as base: the median of per-round
    # ratios cancels load that changes between rounds.
    paired = (statistics.median(b / x for b, x in zip(times["base"], t))
              if name != "hf" else None)
    rows.append({"variant": name, "median_s": med, "min_s": min(t),
                 "max_s": max(t), "tokens_per_s": tokens / med,
                 "vs_lta_base": base / med, "vs_lta_base_paired": paired,
                 "vs_lta_base_best": min(times["base"]) / min(t), "times": t})
    print(f"| {labels[name]} | {med:.3f} ({min(t):.3f}-{max(t):.3f}) | "
          f"{tokens / med:,.1f} | {base / med:.3f} | "
          f"{'n/a' if paired is None else f'{paired:.3f}'} | "
          f"{min(times['base']) / min(t):.3f} |")
  prefill = statistics.median(times["prefill"])
  print(f"\nlta base encode + prefill alone: {prefill:.3f} s median "
        f"({prefill / base:.0%} of a base call)")
  if "merged" in ids and "unmerged" in ids:
    print(f"merged vs unmerged ids: {_match(ids['merged'], ids['unmerged'])}")
  if "hf" in ids:
    print(f"lta base vs HF ids: {_match(ids['base'], ids['hf'])}")
    print(f"HF: {hf_backend}, OMP_WAIT_POLICY="
          f"{flags.omp_wait_policy or '(torch default)'}")
  print(f"load avg after lta {load_lta}, after HF {load_hf}; peak RSS of "
        "this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
  if flags.json_out:
    with open(flags.json_out, "w") as f:
      json.dump({"command": command, "flags": vars(flags), "rows": rows,
                 "prefill_s": times["prefill"], "cpus": os.cpu_count(),
                 "jax": jax.__version__, "hf_backend": hf_backend}, f,
                indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
