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
and --decode greedy steps; tokens/s = batch * decode / seconds. lta and HF
each run in a fresh worker process per round, interleaved in rounds
(bench/fair_rounds.py: alternating order, load recorded, loaded rounds
thrown away and repeated; --pin_cpu for the 1-core variant). Within the
lta worker the lta variants are compiled once, warmed up, then timed
round-robin (one call of each per pass, rotating the order). Reported:
the median over rounds of each round's median of --runs calls, and
throughput relative to lta base: as a ratio of medians; paired (the
median over rounds of the per-round ratio of medians, which cancels load
that changes between rounds); and as a ratio of the fastest calls.

Full length: the column of the output kernel for EOS (id 1) is zeroed, so
its logit is exactly 0 while the largest of the other (random, roughly
N(0, 1)) logits is positive: EOS is never the argmax, and the script checks
that no lta row emitted it. HF additionally gets min_new_tokens =
max_new_tokens, which masks EOS. With EOS absent both sides decode the same
sequences; the match rate is printed as a correctness check.

Threads: see bench/fair_rounds.py. torch's OpenMP workers spin-wait by
default (its best on an idle machine, the default here); on a machine shared
with other busy processes that makes a 2-thread generate 10-20x slower than
1 thread (8.7 s vs 0.37 s for the --quick shape, measured under load), so
pass --omp_wait_policy=PASSIVE there, and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time

import numpy as np

import fair_rounds  # bench/, next to this file
import hf_peer
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
QUICK = dict(vocab=4096, layers=2, batch=2, inputs=64, decode=16, runs=3,
             rounds=2)


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
  fair_rounds.add_flags(p, rounds=3)
  hf_peer.add_flag(p)
  p.add_argument("--json_out", help="also write the results here")
  p.add_argument("--worker", help=argparse.SUPPRESS)  # a directory
  flags = p.parse_args(argv)
  if flags.quick:
    p.set_defaults(**QUICK)
    flags = p.parse_args(argv)
  check_variants(flags)
  return flags


def check_variants(flags) -> None:
  """--variants as a list; the HF peer checked before any timing."""
  names = [n for n in flags.variants.split(",") if n]
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown or not names:
    raise ValueError(f"--variants={flags.variants!r}: unknown {unknown}; "
                     f"choose from {VARIANTS}")
  flags.variants = names
  if "hf" in names and not flags.worker:  # fail now, before any timing
    hf_peer.check_python(flags.hf_python)
  fair_rounds.check_flags(flags)


def random_lora_b(adapters, seed: int = 1):
  """lora_b starts at zero; a trained adapter's is not, so draw it."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(adapters)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  drawn = [0.02 * jax.random.normal(k, x.shape, x.dtype)
           if jax.tree_util.keystr(path).endswith("['lora_b']") else x
           for (path, x), k in zip(leaves, keys)]
  return jax.tree_util.tree_unflatten(treedef, drawn)


def _variables(config: T5Config, adapter: AdapterConfig):
  """Random base params with EOS never argmax, and random LoRA factors."""
  lora_model = EncoderDecoderModel(Transformer(config, adapter))
  variables = jax.jit(lora_model.init_unboxed)(jax.random.PRNGKey(0))
  params, adapters = variables["params"], variables["adapters"]
  head = params["decoder"]["logits_dense"]["kernel"]
  params["decoder"]["logits_dense"]["kernel"] = head.at[
      :, config.eos_token_id].set(0.0)
  adapters = random_lora_b(adapters)
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
  times, ids = time_round_robin(calls, flags.runs, flags.warmup)
  del ids["prefill"]
  check_full_length(ids, config.eos_token_id)
  return times, ids, all_vars["base"]["params"]


def time_round_robin(calls, runs: int, warmup: int):
  """(times, first outputs) per name of calls: each compiled and warmed up,
  then timed `runs` times round-robin."""
  ids = {}
  for name, call in calls.items():
    start = time.perf_counter()
    ids[name] = jax.block_until_ready(call())
    print(f"  compiled + ran lta {name} in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    for _ in range(warmup):
      jax.block_until_ready(call())
  times = {n: [] for n in calls}
  order = list(calls)
  for i in range(runs):
    # Rotate who goes first so no variant always follows the same one.
    for name in order[i % len(order):] + order[:i % len(order)]:
      call = calls[name]
      start = time.perf_counter()
      jax.block_until_ready(call())
      times[name].append(time.perf_counter() - start)
  return times, ids


def check_full_length(ids, eos_id: int) -> None:
  """Every row decoded every step: no EOS (ids becomes numpy, in place)."""
  for name, out in ids.items():
    out = np.asarray(out)
    if (out == eos_id).any() or (out == 0).all(axis=1).any():
      raise RuntimeError(f"lta {name} emitted EOS; rows would stop early and "
                         "tokens/s would be wrong")
    ids[name] = out


def _hf_command(flags, tmp: str) -> list[str]:
  return [flags.hf_python, os.path.join(REPO, "bench", "hf_decode.py"),
          f"--model_dir={tmp}/hf", f"--inputs={tmp}/inputs.npy",
          f"--decode={flags.decode}", f"--runs={flags.runs}",
          f"--warmup={flags.warmup}", f"--threads={flags.threads}",
          f"--out={tmp}/hf_ids.npy"]


def _lta_worker(flags) -> None:
  """One round's lta side: every lta variant, timed round-robin."""
  config, adapter, enc = _setup(flags)
  names = ["base"] + [n for n in flags.variants if n not in ("base", "hf")]
  times, ids, _ = _time_lta(flags, config, adapter, enc, names)
  np.savez(os.path.join(flags.worker, "lta_ids.npz"), **ids)
  print("RESULT " + json.dumps({
      "times": times,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "backend": f"jax {jax.__version__} {jax.default_backend()}, XLA_FLAGS="
                 f"'{os.environ.get('XLA_FLAGS', '')}'"}), flush=True)


def _setup(flags):
  config = T5Config(vocab_size=flags.vocab, d_model=flags.d_model,
                    d_ff=flags.d_ff, num_heads=flags.heads, d_kv=flags.d_kv,
                    num_encoder_layers=flags.layers,
                    num_decoder_layers=flags.layers, dropout_rate=0.0,
                    name="mt5-bench")
  adapter = AdapterConfig(kind="lora", rank=flags.rank,
                          alpha=float(flags.rank))
  enc = np.random.default_rng(0).integers(
      2, flags.vocab, (flags.batch, flags.inputs)).astype(np.int32)
  return config, adapter, enc


def match(a: np.ndarray, b: np.ndarray) -> str:
  same_rows = int((a == b).all(axis=1).sum())
  return (f"{(a == b).mean():.1%} of tokens, {same_rows}/{a.shape[0]} rows "
          "identical")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  if flags.worker:
    _lta_worker(flags)
    return 0
  command = shlex.join([os.path.relpath(sys.executable, REPO),
                        os.path.relpath(os.path.abspath(__file__), REPO),
                        *argv])
  config, adapter, enc = _setup(flags)
  tokens = flags.batch * flags.decode
  print(f"command: {command}")
  print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  print(f"model: mT5-shaped d_model={flags.d_model} d_ff={flags.d_ff} "
        f"heads={flags.heads} d_kv={flags.d_kv} layers={flags.layers}+"
        f"{flags.layers} vocab={flags.vocab}, random weights, float32; LoRA "
        f"r={flags.rank} on q,k,v,o of every attention")
  print(f"work: batch {flags.batch}, inputs {flags.inputs}, greedy decode "
        f"{flags.decode} tokens per row (EOS never argmax); each call = "
        f"encode + prefill + decode; per round and side the median of "
        f"{flags.runs} after {flags.warmup} warm-up, in a fresh process; "
        f"{flags.rounds} rounds ({flags.order})")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), python "
        f"{platform.python_version()}; {fair_rounds.settings(flags)}; load "
        f"avg {host_info.load()} at start", flush=True)
  sides = ["lta"] + (["hf"] if "hf" in flags.variants else [])
  with tempfile.TemporaryDirectory() as tmp:
    if "hf" in sides:
      all_vars, _ = _variables(config, adapter)
      save_hf_checkpoint(all_vars["base"]["params"], config,
                         os.path.join(tmp, "hf"))
      del all_vars
      np.save(os.path.join(tmp, "inputs.npy"), enc)

    def run_one(side):
      torch_side = side == "hf"
      cmd = (_hf_command(flags, tmp) if torch_side else
             [sys.executable, os.path.abspath(__file__), *argv,
              f"--worker={tmp}"])
      return fair_rounds.run_worker(fair_rounds.worker_command(flags, cmd),
                                    fair_rounds.worker_env(flags, torch_side),
                                    REPO)

    rounds, thrown = fair_rounds.run_rounds(sides, run_one, flags)
    lta_ids = dict(np.load(os.path.join(tmp, "lta_ids.npz")))
    hf_ids = (np.load(os.path.join(tmp, "hf_ids.npy")) if "hf" in sides
              else None)
  rows = report(flags, rounds, tokens)
  summarize(flags, command, rounds, thrown, rows, lta_ids, hf_ids)
  return 0


def summarize(flags, command: str, rounds, thrown: int, rows, lta_ids,
              hf_ids, **record) -> None:
  """Prints the ids checks, backends and load; writes --json_out."""
  if "merged" in lta_ids and "unmerged" in lta_ids:
    print(f"merged vs unmerged ids: "
          f"{match(lta_ids['merged'], lta_ids['unmerged'])}")
  if hf_ids is not None:
    print(f"lta base vs HF ids: {match(lta_ids['base'], hf_ids)}")
    print(f"HF: {rounds[0].results['hf']['backend']}")
  print(f"lta: {rounds[0].results['lta']['backend']}")
  print(f"rounds thrown away for load > {flags.max_load}: {thrown} (cap "
        f"{flags.max_retries}); kept despite load: "
        f"{sum(r.kept_despite_load for r in rounds)}; load avg at end "
        f"{host_info.load()}")
  if flags.json_out:
    with open(flags.json_out, "w") as f:
      json.dump({"command": command, "flags": vars(flags), "rows": rows,
                 "cpus": os.cpu_count(), "settings": fair_rounds.settings(
                     flags), **record,
                 **fair_rounds.rounds_record(rounds, thrown)}, f, indent=2)


def report(flags, rounds, tokens, prefill: str = "encode + prefill"
           ) -> list[dict]:
  """The table: per variant, medians over rounds and ratios to lta base."""
  def per_round(name):  # each round's median seconds per call
    side = "hf" if name == "hf" else "lta"
    return [statistics.median(r.results[side]["times"] if side == "hf" else
                              r.results[side]["times"][name]) for r in rounds]

  def fastest(name):
    side = "hf" if name == "hf" else "lta"
    return min(min(r.results[side]["times"] if side == "hf" else
                   r.results[side]["times"][name]) for r in rounds)

  names = [n for n in ("base", "merged", "unmerged", "hf")
           if n == "base" or n in flags.variants]
  base = per_round("base")
  labels = {"base": "lta base", "merged": "lta merged LoRA",
            "unmerged": "lta unmerged LoRA", "hf": "HF generate"}
  rows = []
  print("\n| variant | s per call, median of rounds (min-max) | tokens/s | "
        "x lta base (medians) | x lta base (paired over rounds) | "
        "x lta base (fastest calls) |")
  print("|---|---|---|---|---|---|")
  for name in names:
    t = per_round(name)
    med = statistics.median(t)
    paired = statistics.median(b / x for b, x in zip(base, t))
    best = fastest("base") / fastest(name)
    rows.append({"variant": name, "round_medians_s": t, "median_s": med,
                 "tokens_per_s": tokens / med,
                 "vs_lta_base": statistics.median(base) / med,
                 "vs_lta_base_paired": paired, "vs_lta_base_best": best})
    print(f"| {labels[name]} | {med:.3f} ({min(t):.3f}-{max(t):.3f}) | "
          f"{tokens / med:,.1f} | {statistics.median(base) / med:.3f} | "
          f"{paired:.3f} | {best:.3f} |")
  prefill_s = statistics.median(statistics.median(r.results["lta"]["times"][
      "prefill"]) for r in rounds)
  print(f"\nlta base {prefill} alone: {prefill_s:.3f} s median "
        f"({prefill_s / statistics.median(base):.0%} of a base call); peak "
        "RSS lta worker "
        f"{max(r.results['lta']['peak_rss_mb'] for r in rounds):,.0f} MB" +
        ("" if "hf" not in names else ", HF worker "
         f"{max(r.results['hf']['peak_rss_mb'] for r in rounds):,.0f} MB"))
  return rows


if __name__ == "__main__":
  sys.exit(main())
