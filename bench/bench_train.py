"""Training-step speed, peak memory and matmul share: lta vs HF peft, paired.

Same mT5-small-shaped model (random weights), same batch, AdamW. Every
configuration runs in a fresh worker process (so each peak RSS is its own),
and the configurations are interleaved in rounds (bench/fair_rounds.py:
alternating order, load recorded, loaded rounds thrown away and repeated):

  make bench-train                                   # 2 threads each
  make bench-train BENCH_ARGS="--pin_cpu 1"          # 1 pinned core each
  .venv/bin/python bench/bench_train.py --vocab 32128 --layers 4 --steps 3
  .venv/bin/python bench/bench_train.py --configs lta_lora,lta_lora@dropout8

Configurations: lta_lora, lta_full, hf_lora, and lta_lora@V / lta_full@V
for each optimisation V in VARIANTS (an ExecutionConfig or a compute dtype):
each V is reported against its plain configuration in the same rounds
(tokens/s and peak memory, before/after, paired); and hf_lora@V for V in
HF_VARIANTS (kept_malloc: glibc malloc set for the HF worker as
lta.host_memory sets it for lta).

The HF side (torch + transformers + peft) runs under --hf_python, a separate
environment (default: the repository's .venv-hf, built by `make hf-env`).
Reported per configuration: the median over rounds of each round's median
step time over --steps timed steps (after --warmup steps; lta compiles
before them), tokens/s = batch * (inputs + targets) / step time, and peak
RSS of the process; for lta also XLA's own accounting of the compiled step
(memory_analysis: arguments, temporaries; cost_analysis: FLOPs) and, in the
JSON, each timed step's minor page faults (page_faults).

Matmul share: each worker also times a float32 matmul (bench/matmul_rate.py:
2048^3 and the step's (tokens x d_model) @ (d_model x d_ff)) on its own
framework and threads, after its steps. The machine's dense matmul rate is
the best median rate any worker reached; a step's achieved rate is its
model matmul FLOPs (an analytic count, the same for lta and HF: see
model_matmul_flops) over its median step time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time

import fair_rounds  # bench/, next to this file
import hf_peer
import host_info
import matmul_rate

CONFIGS = ("lta_lora", "lta_full", "hf_lora")
LABELS = {"lta_lora": "lta LoRA", "lta_full": "lta full FT",
          "hf_lora": "HF peft LoRA"}
# Optimisations of the lta step: ExecutionConfig fields, or 'dtype' (the
# compute dtype; parameters stay float32).
VARIANTS = {
    "dropout8": {"dropout_mask_bits": 8},
    "dropout16": {"dropout_mask_bits": 16},
    "chunked_ce": {"loss_chunk_length": 16},
    "remat_dots": {"remat_policy": "dots"},
    "remat_full": {"remat_policy": "full"},
    "bf16": {"dtype": "bfloat16"},
    "fast": {"dropout_mask_bits": 8, "loss_chunk_length": 16},
    # Dropout words from XLA's RngBitGenerator instead of jax.random.
    "dropout8_xla": {"dropout_mask_bits": 8, "dropout_rng": "xla"},
    "dropout_xla": {"dropout_rng": "xla"},
    # lta.host_memory's effect: the same step with glibc malloc as it is.
    "dropout8_system_malloc": {"dropout_mask_bits": 8,
                               "env": {"LTA_HOST_MALLOC": "system"}},
}
# Settings of the HF worker: glibc malloc set as lta.host_memory sets it
# (one arena, no mmap, no trim), so both sides can have it.
HF_VARIANTS = {
    "kept_malloc": {"env": {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
                            "MALLOC_TRIM_THRESHOLD_": str(2**62)}},
}


def split_config(name: str) -> tuple[str, str]:
  """'lta_lora@dropout8' -> ('lta_lora', 'dropout8'); no variant: ''."""
  base, _, variant = name.partition("@")
  return base, variant


def label(name: str) -> str:
  base, variant = split_config(name)
  return LABELS[base] + (f" @{variant}" if variant else "")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default=",".join(CONFIGS))
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--inputs", type=int, default=512)
  p.add_argument("--targets", type=int, default=64)
  p.add_argument("--steps", type=int, default=5, help="timed steps")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--vocab", type=int, default=250112)
  p.add_argument("--d_model", type=int, default=512)
  p.add_argument("--d_ff", type=int, default=1024)
  p.add_argument("--heads", type=int, default=6)
  p.add_argument("--d_kv", type=int, default=64)
  p.add_argument("--layers", type=int, default=8,
                 help="encoder and decoder layers each")
  p.add_argument("--rank", type=int, default=4)
  p.add_argument("--dropout", type=float, default=0.1)
  p.add_argument("--lr", type=float, default=2e-4)
  fair_rounds.add_flags(p, rounds=5)
  p.add_argument("--matmul_shapes", default=None,
                 help="MxKxN,...; default 2048^3 and tokens x d_model x d_ff")
  p.add_argument("--matmul_runs", type=int, default=7)
  hf_peer.add_flag(p)
  p.add_argument("--json_out", help="also write the results here")
  p.add_argument("--worker", help=argparse.SUPPRESS)
  flags = p.parse_args(argv)
  if flags.matmul_shapes is None:
    flags.matmul_shapes = (f"2048x2048x2048,{flags.batch * flags.inputs}x"
                           f"{flags.d_model}x{flags.d_ff}")
  return flags


def model_matmul_flops(flags, full: bool) -> float:
  """Matmul FLOPs of one training step (forward + backward), counted.

  Forward: every dense layer (2 * tokens * in * out), attention scores and
  values (the whole L_q x L_k matrix, masked or not), the LoRA factors on
  q, k, v, o, and the output layer. Backward: a trainable weight costs twice
  its forward (input and weight gradients); a frozen one once (the input
  gradient still flows to the adapters below it); attention scores and
  values twice. Elementwise work, softmax and the optimizer are left out.
  """
  b, le, ld, d = flags.batch, flags.inputs, flags.targets, flags.d_model
  inner, d_ff, r = flags.heads * flags.d_kv, flags.d_ff, flags.rank
  te, td = b * le, b * ld
  mlp = 2 * 3 * d * d_ff  # gated-GELU: wi_0, wi_1, wo (per token)
  weights = flags.layers * (te * (2 * 4 * d * inner + mlp) +     # encoder
                            td * (2 * 4 * d * inner + mlp) +     # decoder
                            td * 2 * 2 * d * inner +             # cross q, o
                            te * 2 * 2 * d * inner)              # cross k, v
  weights += td * 2 * d * flags.vocab                            # logits
  scores = flags.layers * 4 * inner * b * (le * le + ld * ld + ld * le)
  if full:
    return 3.0 * (weights + scores)
  # LoRA A (in x r) and B (r x out) on q, k, v, o of every attention: per
  # layer 4 on encoder tokens, 4 + 2 (cross q, o) on decoder tokens and 2
  # (cross k, v) on encoder tokens.
  lora = 2 * r * (d + inner) * flags.layers * 6 * (te + td)
  return 2.0 * weights + 3.0 * scores + 3.0 * lora


def _tokens(flags, rng_seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(rng_seed)
  enc = rng.integers(3, flags.vocab, (flags.batch, flags.inputs), np.int64)
  tgt = rng.integers(3, flags.vocab, (flags.batch, flags.targets), np.int64)
  return enc, tgt


def lta_step(flags, full: bool, variant: str):
  """(jitted train step, state, batch, model, execution, dtype) of an lta
  configuration, as its worker times it (bench/profile_train_step.py too)."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  import optax
  from lta.train import state as train_state
  from lta.train import steps as train_steps
  from lta.models.mt5.config import T5Config
  from lta.models.mt5.network import Transformer
  from lta.models.contract import EncoderDecoderModel
  from lta.models.execution import ExecutionConfig
  from lta.adapters.config import AdapterConfig

  options = dict(VARIANTS.get(variant, {}))
  options.pop("env", None)  # set by _run_config
  dtype = options.pop("dtype", "float32")
  config = T5Config(vocab_size=flags.vocab, d_model=flags.d_model,
                    d_ff=flags.d_ff, num_heads=flags.heads, d_kv=flags.d_kv,
                    num_encoder_layers=flags.layers,
                    num_decoder_layers=flags.layers,
                    dropout_rate=flags.dropout, dtype=dtype)
  adapter = None if full else AdapterConfig(kind="lora", rank=flags.rank,
                                            alpha=float(flags.rank))
  execution = ExecutionConfig(**options)
  model = EncoderDecoderModel(Transformer(config, adapter, execution))
  optimizer = optax.adamw(flags.lr)
  variables = jax.jit(model.init_unboxed)(jax.random.PRNGKey(0))
  state = jax.jit(functools.partial(
      train_state.create, pattern="full" if full else "adapters",
      optimizer=optimizer), donate_argnums=(0,))(variables)
  del variables
  enc, tgt = _tokens(flags)
  dec_in = np.concatenate([np.zeros((flags.batch, 1), np.int64),
                           tgt[:, :-1]], 1)
  batch = jax.device_put({
      "encoder_input_tokens": enc.astype(np.int32),
      "decoder_input_tokens": dec_in.astype(np.int32),
      "decoder_target_tokens": tgt.astype(np.int32)})
  step = jax.jit(functools.partial(train_steps.train_step, model=model,
                                   optimizer=optimizer), donate_argnums=(0,))
  return step, state, batch, model, execution, dtype


def _lta_worker(flags, full: bool, variant: str) -> dict:
  import flax  # pylint: disable=g-import-not-at-top
  import jax
  import optax

  step, state, batch, _, execution, dtype = lta_step(flags, full, variant)
  jax.block_until_ready(state)
  setup_rss = host_info.peak_rss_mb()
  start = time.perf_counter()
  step = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  memory = step.memory_analysis()
  cost = step.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  trainable = sum(x.size for x in jax.tree.leaves(state.trainable))
  holder = {"state": state}
  del state

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics["loss"])

  faults = []
  times = host_info.timed(run, flags.warmup, flags.steps, faults)
  steps_rss = host_info.peak_rss_mb()
  return {"times": times, "page_faults": faults, "trainable": int(trainable),
          "setup_rss_mb": setup_rss, "steps_peak_rss_mb": steps_rss,
          "compile_s": compile_s, "xla_flops": float(cost.get("flops", 0.0)),
          "xla_mb": {k: getattr(memory, f"{k}_size_in_bytes") / 2**20
                     for k in ("argument", "output", "alias", "temp")},
          "matmul": matmul_rate.measure("jax", flags.matmul_shapes.split(","),
                                        flags.matmul_runs),
          "backend": f"jax {jax.__version__} {jax.default_backend()}, flax "
          f"{flax.__version__}, optax {optax.__version__}, dropout PRNG "
          f"{jax.config.jax_default_prng_impl}, {execution}, compute dtype "
          f"{dtype}, XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}'"}


def _hf_worker(flags) -> dict:
  import peft  # pylint: disable=g-import-not-at-top
  import torch
  import transformers

  torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS",
                                          flags.threads)))
  torch.manual_seed(0)
  config = transformers.MT5Config(
      vocab_size=flags.vocab, d_model=flags.d_model, d_ff=flags.d_ff,
      num_heads=flags.heads, d_kv=flags.d_kv, num_layers=flags.layers,
      num_decoder_layers=flags.layers, dropout_rate=flags.dropout,
      feed_forward_proj="gated-gelu", tie_word_embeddings=False,
      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
  model = transformers.MT5ForConditionalGeneration(config)
  model = peft.get_peft_model(model, peft.LoraConfig(
      r=flags.rank, lora_alpha=flags.rank, lora_dropout=0.0,
      target_modules=["q", "k", "v", "o"]))
  model.train()
  params = [p for p in model.parameters() if p.requires_grad]
  optimizer = torch.optim.AdamW(params, lr=flags.lr)
  enc, tgt = _tokens(flags)
  enc, tgt = torch.from_numpy(enc), torch.from_numpy(tgt)
  mask = torch.ones_like(enc)
  setup_rss = host_info.peak_rss_mb()

  def run():
    loss = model(input_ids=enc, attention_mask=mask, labels=tgt).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

  times = host_info.timed(run, flags.warmup, flags.steps)
  steps_rss = host_info.peak_rss_mb()
  return {"times": times,
          "trainable": int(sum(p.numel() for p in params)),
          "setup_rss_mb": setup_rss, "steps_peak_rss_mb": steps_rss,
          "matmul": matmul_rate.measure("torch",
                                        flags.matmul_shapes.split(","),
                                        flags.matmul_runs),
          "backend": f"torch {torch.__version__} "
          f"({torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(default)')}), transformers "
          f"{transformers.__version__}, peft {peft.__version__}"}


def _worker(flags) -> None:
  base, variant = split_config(flags.worker)
  if base == "hf_lora":
    result = _hf_worker(flags)
  else:
    result = _lta_worker(flags, full=base == "lta_full", variant=variant)
  result["peak_rss_mb"] = host_info.peak_rss_mb()
  result["load"] = host_info.load()
  print("RESULT " + json.dumps(result), flush=True)


def _run_config(name: str, flags, argv: list[str]) -> dict:
  base, variant = split_config(name)
  torch_side = base == "hf_lora"
  python = flags.hf_python if torch_side else sys.executable
  env = fair_rounds.worker_env(flags, torch_side)
  env.update((HF_VARIANTS if torch_side else VARIANTS).get(variant, {}).get(
      "env", {}))
  env["PYTHONPATH"] = REPO
  r = fair_rounds.run_worker(fair_rounds.worker_command(
      flags, [python, os.path.abspath(__file__), *argv, f"--worker={name}"]),
      env, REPO)
  r["median_s"] = statistics.median(r["times"])
  return r


def _check_configs(names: list[str]) -> None:
  def known(name):
    base, variant = split_config(name)
    allowed = HF_VARIANTS if base == "hf_lora" else VARIANTS
    return base in CONFIGS and (not variant or variant in allowed)

  bad = [n for n in names if not known(n)]
  if bad or not names:
    raise SystemExit(
        f"--configs: unknown {bad}; choose from {CONFIGS}, optionally "
        f"lta_lora@V or lta_full@V with V in {sorted(VARIANTS)}, or "
        f"hf_lora@V with V in {sorted(HF_VARIANTS)}")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  if flags.worker:
    _worker(flags)
    return 0
  fair_rounds.check_flags(flags)
  names = [n for n in flags.configs.split(",") if n]
  _check_configs(names)
  if any(split_config(n)[0] == "hf_lora" for n in names):  # fail now
    hf_peer.check_python(flags.hf_python)
  for shape in flags.matmul_shapes.split(","):
    matmul_rate.parse_shape(shape)
  command = shlex.join([os.path.relpath(sys.executable, REPO),
                        os.path.relpath(os.path.abspath(__file__), REPO),
                        *argv])
  tokens = flags.batch * (flags.inputs + flags.targets)
  print(f"command: {command}")
  print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  print(f"model: mT5-shaped d_model={flags.d_model} d_ff={flags.d_ff} "
        f"heads={flags.heads} d_kv={flags.d_kv} layers={flags.layers}+"
        f"{flags.layers} vocab={flags.vocab}, random weights, float32; LoRA "
        f"r={flags.rank} on q,k,v,o of every attention; AdamW; dropout "
        f"{flags.dropout}")
  print(f"work: batch {flags.batch} x (inputs {flags.inputs} + targets "
        f"{flags.targets}) = {tokens:,} tokens/step; per round and config "
        f"the median of {flags.steps} steps after {flags.warmup} warm-up, "
        f"in a fresh process; {flags.rounds} rounds ({flags.order})")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), python "
        f"{platform.python_version()}; {fair_rounds.settings(flags)}; load "
        f"avg {host_info.load()} at start", flush=True)
  rounds, thrown = fair_rounds.run_rounds(
      names, lambda name: _run_config(name, flags, argv), flags)
  rows = _summarise(rounds, names, flags, tokens)
  _print_tables(rounds, rows, names, flags)
  print(f"rounds thrown away for load > {flags.max_load}: {thrown} (cap "
        f"{flags.max_retries}); kept despite load: "
        f"{sum(r.kept_despite_load for r in rounds)}")
  print(f"load avg at end {host_info.load()}")
  if flags.json_out:
    with open(flags.json_out, "w") as f:
      json.dump({"command": command, "flags": vars(flags),
                 "cpus": os.cpu_count(), "cpu": host_info.cpu_name(),
                 "settings": fair_rounds.settings(flags), "summary": rows,
                 **fair_rounds.rounds_record(rounds, thrown)}, f, indent=2)
  return 0


def _summarise(rounds, names, flags, tokens) -> dict:
  """Per config: medians over rounds, memory, achieved matmul rate."""
  machine = max(rate for r in rounds for res in r.results.values()
                for rate in res["matmul"].values())
  rows = {}
  for name in names:
    per_round = [r.results[name] for r in rounds]
    median_s = statistics.median(x["median_s"] for x in per_round)
    flops = model_matmul_flops(flags, full=name.startswith("lta_full"))
    row = {"median_s": median_s, "tokens_per_s": tokens / median_s,
           "round_medians_s": [x["median_s"] for x in per_round],
           "trainable": per_round[0]["trainable"],
           "peak_rss_mb": statistics.median(
               x["steps_peak_rss_mb"] for x in per_round),
           "model_gflops": flops / 1e9,
           "achieved_gflops": flops / median_s / 1e9,
           "own_matmul_gflops": max(v for x in per_round
                                    for v in x["matmul"].values()),
           "backend": per_round[0]["backend"]}
    row["share"] = row["achieved_gflops"] / machine
    if "xla_mb" in per_round[0]:
      mb = per_round[0]["xla_mb"]
      row["xla_temp_mb"] = mb["temp"]
      row["xla_total_mb"] = mb["argument"] + mb["temp"]
      row["xla_gflops"] = per_round[0]["xla_flops"] / 1e9
      row["compile_s"] = statistics.median(x["compile_s"] for x in per_round)
    rows[name] = row
  rows["machine_matmul_gflops"] = machine
  return rows


def _paired(rounds, a, b, key):
  ratios = fair_rounds.paired_ratios(rounds, a, b, key)
  return "n/a" if ratios is None else fair_rounds.summary(ratios)


def _print_tables(rounds, rows, names, flags) -> None:
  header = ("config", "trainable params", "step s, median of rounds "
            "(min-max)", "tokens/s", "peak RSS MB", "XLA args + temps MB",
            "achieved GFLOP/s", "share of machine matmul rate")
  print("\n| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for name in names:
    r = rows[name]
    t = r["round_medians_s"]
    xla = f"{r['xla_total_mb']:,.0f}" if "xla_total_mb" in r else "n/a"
    print(f"| {label(name)} | {r['trainable']:,} | {r['median_s']:.2f} "
          f"({min(t):.2f}-{max(t):.2f}) | {r['tokens_per_s']:,.0f} | "
          f"{r['peak_rss_mb']:,.0f} | {xla} | {r['achieved_gflops']:,.1f} | "
          f"{r['share']:.1%} |")
  print(f"\nmachine dense matmul rate: {rows['machine_matmul_gflops']:,.1f} "
        "GFLOP/s (best median of any worker, float32)")
  speed = lambda x: 1.0 / x["median_s"]  # pylint: disable=unnecessary-lambda-assignment
  rss = lambda x: x["steps_peak_rss_mb"]  # pylint: disable=unnecessary-lambda-assignment
  print("\npaired ratios (median over rounds, min-max):")
  print(f"  lta LoRA / HF LoRA tokens/s: "
        f"{_paired(rounds, 'lta_lora', 'hf_lora', speed)} (goal >= 1.5)")
  print(f"  lta LoRA / lta full peak RSS: "
        f"{_paired(rounds, 'lta_lora', 'lta_full', rss)} (goal <= 0.6)")
  print(f"  lta LoRA / HF LoRA peak RSS: "
        f"{_paired(rounds, 'lta_lora', 'hf_lora', rss)} (goal <= 1.0)")
  variants = [n for n in names if split_config(n)[1]]
  if variants:
    print("\neach optimisation against its plain config, same rounds "
          "(after / before):")
    print("| optimisation | tokens/s, paired | peak RSS, paired | "
          "XLA temporaries MB (before -> after) |")
    print("|---|---|---|---|")
  for name in variants:
    base = split_config(name)[0]
    if base not in names:
      print(f"| {label(name)} | add {base} to --configs to pair it | | |")
      continue
    temps = (f"{rows[base].get('xla_temp_mb', 0):,.0f} -> "
             f"{rows[name].get('xla_temp_mb', 0):,.0f}")
    print(f"| {label(name)} | {_paired(rounds, name, base, speed)} | "
          f"{_paired(rounds, name, base, rss)} | {temps} |")
  for name in names:
    print(f"{label(name)}: {rows[name]['backend']}")


if __name__ == "__main__":
  sys.exit(main())
