"""Training-step speed, peak memory and matmul share: lta LoRA, full, HF peft.

Same mT5-small-shaped model (random weights), same batch, AdamW, one CPU
process per configuration (so each peak RSS is its own), all in one run:

  .venv/bin/python bench/bench_train.py                      # mT5-small shape
  .venv/bin/python bench/bench_train.py --vocab 32128 --layers 4 --steps 3

The HF side (torch + transformers + peft) runs under --hf_python, a separate
environment (default: the repository's .venv-hf, built by `make hf-env`).
Reported per configuration: median step time over --steps timed steps
(after --warmup steps; lta compiles before them), tokens/s = batch *
(inputs + targets) / step time, and peak RSS of the process; for lta also
XLA's own accounting of the compiled step (memory_analysis: arguments,
temporaries; cost_analysis: FLOPs).

Matmul share: each worker also times a float32 matmul (bench/matmul_rate.py:
2048^3 and the step's (tokens x d_model) @ (d_model x d_ff)) on its own
framework and threads, after its steps. The machine's dense matmul rate is
the best median rate any worker reached; a step's achieved rate is its
model matmul FLOPs (an analytic count, the same for lta and HF: see
model_matmul_flops) over its median step time.

Threads: XLA uses every core; torch gets --threads (default: every core).
torch's OpenMP workers spin-wait by default, which on a machine shared with
other busy processes makes multi-threaded torch many times slower (see
bench_decode.py). The HF worker therefore runs with OMP_WAIT_POLICY=PASSIVE
(--omp_wait_policy); pass --omp_wait_policy= on a quiet, dedicated machine
to get torch's default.
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
import time

import hf_peer  # bench/, next to this file
import host_info
import matmul_rate

CONFIGS = ("lta_lora", "lta_full", "hf_lora")
LABELS = {"lta_lora": "lta LoRA", "lta_full": "lta full FT",
          "hf_lora": "HF peft LoRA"}
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
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch threads (XLA uses every core)")
  p.add_argument("--omp_wait_policy", default="PASSIVE",
                 help="OMP_WAIT_POLICY for torch ('' = torch's default); "
                 "see the module docstring")
  p.add_argument("--matmul_shapes", default=None,
                 help="MxKxN,...; default 2048^3 and tokens x d_model x d_ff")
  p.add_argument("--matmul_runs", type=int, default=7)
  hf_peer.add_flag(p)
  p.add_argument("--json_out", help="also write the results here")
  p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
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


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0




def _tokens(flags, rng_seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(rng_seed)
  enc = rng.integers(3, flags.vocab, (flags.batch, flags.inputs), np.int64)
  tgt = rng.integers(3, flags.vocab, (flags.batch, flags.targets), np.int64)
  return enc, tgt


def _timed(step_fn, flags) -> list[float]:
  for _ in range(flags.warmup):
    step_fn()
  times = []
  for _ in range(flags.steps):
    start = time.perf_counter()
    step_fn()
    times.append(time.perf_counter() - start)
  return times


def _lta_worker(flags, full: bool) -> dict:
  import functools  # pylint: disable=g-import-not-at-top
  import flax
  import jax
  import numpy as np
  import optax
  from lta.train import state as train_state
  from lta.train import steps as train_steps
  from lta.models.mt5.config import T5Config
  from lta.models.mt5.network import Transformer
  from lta.models.contract import EncoderDecoderModel
  from lta.adapters.config import AdapterConfig

  config = T5Config(vocab_size=flags.vocab, d_model=flags.d_model,
                    d_ff=flags.d_ff, num_heads=flags.heads, d_kv=flags.d_kv,
                    num_encoder_layers=flags.layers,
                    num_decoder_layers=flags.layers,
                    dropout_rate=flags.dropout)
  adapter = None if full else AdapterConfig(kind="lora", rank=flags.rank,
                                            alpha=float(flags.rank))
  model = EncoderDecoderModel(Transformer(config, adapter))
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
  jax.block_until_ready(state)
  setup_rss = _peak_rss_mb()
  start = time.perf_counter()
  step = jax.jit(functools.partial(train_steps.train_step, model=model,
                                   optimizer=optimizer),
                 donate_argnums=(0,)).lower(state, batch).compile()
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

  times = _timed(run, flags)
  steps_rss = _peak_rss_mb()
  return {"times": times, "trainable": int(trainable),
          "setup_rss_mb": setup_rss, "steps_peak_rss_mb": steps_rss,
          "compile_s": compile_s, "xla_flops": float(cost.get("flops", 0.0)),
          "xla_mb": {k: getattr(memory, f"{k}_size_in_bytes") / 2**20
                     for k in ("argument", "output", "alias", "temp")},
          "matmul": matmul_rate.measure("jax", flags.matmul_shapes.split(","),
                                        flags.matmul_runs),
          "backend": f"jax {jax.__version__} {jax.default_backend()}, flax "
          f"{flax.__version__}, optax {optax.__version__}, dropout PRNG "
          f"{jax.config.jax_default_prng_impl}"}


def _hf_worker(flags) -> dict:
  import peft  # pylint: disable=g-import-not-at-top
  import torch
  import transformers

  torch.set_num_threads(flags.threads)
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
  setup_rss = _peak_rss_mb()

  def run():
    loss = model(input_ids=enc, attention_mask=mask, labels=tgt).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

  times = _timed(run, flags)
  steps_rss = _peak_rss_mb()
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
  if flags.worker == "hf_lora":
    result = _hf_worker(flags)
  else:
    result = _lta_worker(flags, full=flags.worker == "lta_full")
  result["peak_rss_mb"] = _peak_rss_mb()
  result["load"] = host_info.load()
  print("RESULT " + json.dumps(result), flush=True)


def _run_config(name: str, flags, argv: list[str]) -> dict:
  python = flags.hf_python if name == "hf_lora" else sys.executable
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("XLA_FLAGS", None)  # one device, like the torch side
  if name == "hf_lora" and flags.omp_wait_policy:
    env["OMP_WAIT_POLICY"] = flags.omp_wait_policy
  proc = subprocess.run([python, os.path.abspath(__file__), *argv,
                         f"--worker={name}"], env=env, cwd=REPO,
                        capture_output=True, text=True, check=False)
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n"
                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _ratio(rows: dict, a: str, b: str, key: str) -> str:
  if a not in rows or b not in rows:
    return "n/a"
  return f"{rows[a][key] / rows[b][key]:.2f}"


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  if flags.worker:
    _worker(flags)
    return 0
  names = [n for n in flags.configs.split(",") if n]
  unknown = sorted(set(names) - set(CONFIGS))
  if unknown or not names:
    raise ValueError(f"--configs={flags.configs!r}: unknown {unknown}; "
                     f"choose from {CONFIGS}")
  if "hf_lora" in names:  # fail now, not after the lta configs ran
    hf_peer.check_python(flags.hf_python)
  for shape in flags.matmul_shapes.split(","):
    matmul_rate.parse_shape(shape)
  command = shlex.join([os.path.relpath(sys.executable, REPO),
                        os.path.relpath(os.path.abspath(__file__), REPO),
                        *argv])
  tokens = flags.batch * (flags.inputs + flags.targets)
  print(f"command: {command}")
  print(f"model: mT5-shaped d_model={flags.d_model} d_ff={flags.d_ff} "
        f"heads={flags.heads} d_kv={flags.d_kv} layers={flags.layers}+"
        f"{flags.layers} vocab={flags.vocab}, random weights, float32; LoRA "
        f"r={flags.rank} on q,k,v,o of every attention; AdamW; dropout "
        f"{flags.dropout}")
  print(f"work: batch {flags.batch} x (inputs {flags.inputs} + targets "
        f"{flags.targets}) = {tokens:,} tokens/step; median of {flags.steps} "
        f"steps after {flags.warmup} warm-up; one process per config")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), python "
        f"{platform.python_version()}; XLA on every core, torch "
        f"{flags.threads} threads with OMP_WAIT_POLICY="
        f"{flags.omp_wait_policy or '(torch default)'}; load avg "
        f"{host_info.load()} at start", flush=True)
  results = {}
  for name in names:
    results[name] = r = _run_config(name, flags, argv)
    r["median_s"] = statistics.median(r["times"])
    r["tokens_per_s"] = tokens / r["median_s"]
    r["model_flops"] = model_matmul_flops(flags, full=name == "lta_full")
    r["achieved_gflops"] = r["model_flops"] / r["median_s"] / 1e9
    print(f"  done {name}: {r['median_s']:.3f} s/step; load avg {r['load']}",
          flush=True)
  machine = max(rate for r in results.values() for rate in
                r["matmul"].values())

  header = ("config", "trainable params", "step s median (min-max)",
            "tokens/s", "peak RSS MB", "model GFLOP/step",
            "achieved GFLOP/s", "matmul GFLOP/s (own)",
            "share of machine matmul rate")
  print("\n| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for name, r in results.items():
    t = r["times"]
    r["share"] = r["achieved_gflops"] / machine
    own = max(r["matmul"].values())
    print(f"| {LABELS[name]} | {r['trainable']:,} | {r['median_s']:.2f} "
          f"({min(t):.2f}-{max(t):.2f}) | {r['tokens_per_s']:,.0f} | "
          f"{r['steps_peak_rss_mb']:,.0f} | {r['model_flops'] / 1e9:,.1f} | "
          f"{r['achieved_gflops']:,.1f} | {own:,.1f} | {r['share']:.1%} |")

  print(f"\nmachine dense matmul rate: {machine:,.1f} GFLOP/s (best median; "
        "float32; per worker, after its steps):")
  for name, r in results.items():
    rates = ", ".join(f"{s} {v:,.1f}" for s, v in r["matmul"].items())
    print(f"  {LABELS[name]} ({'torch' if name == 'hf_lora' else 'jax'}): "
          f"{rates}")
  print("\nmemory (RSS: the process's high-water mark, after set-up and at "
        "the end; XLA: memory_analysis of the compiled lta step) and XLA's "
        "FLOP count (cost_analysis):")
  print("| config | peak RSS after set-up MB | peak RSS MB | XLA arguments MB "
        "| XLA temporaries MB | XLA arguments + temps MB | XLA GFLOP/step | "
        "compile s |")
  print("|---|---|---|---|---|---|---|---|")
  for name, r in results.items():
    if name == "hf_lora":
      xla = "n/a | n/a | n/a | n/a | n/a"
    else:
      mb = r["xla_mb"]
      r["xla_total_mb"] = mb["argument"] + mb["temp"]
      xla = (f"{mb['argument']:,.0f} | {mb['temp']:,.0f} | "
             f"{r['xla_total_mb']:,.0f} | {r['xla_flops'] / 1e9:,.1f} | "
             f"{r['compile_s']:.1f}")
    print(f"| {LABELS[name]} | {r['setup_rss_mb']:,.0f} | "
          f"{r['steps_peak_rss_mb']:,.0f} | {xla} |")
  rss = "steps_peak_rss_mb"
  print("\nratios (this run):")
  print("  lta LoRA / HF LoRA tokens/s: "
        f"{_ratio(results, 'lta_lora', 'hf_lora', 'tokens_per_s')} "
        "(goal >= 1.5)")
  print("  lta LoRA / lta full peak RSS: "
        f"{_ratio(results, 'lta_lora', 'lta_full', rss)} (goal <= 0.6); "
        "XLA arguments + temps: "
        f"{_ratio(results, 'lta_lora', 'lta_full', 'xla_total_mb')}")
  print("  lta LoRA / HF LoRA peak RSS: "
        f"{_ratio(results, 'lta_lora', 'hf_lora', rss)}")
  for name, r in results.items():
    print(f"{LABELS[name]}: {r['backend']}")

  print(f"load avg at end {host_info.load()}")
  if flags.json_out:
    with open(flags.json_out, "w") as f:
      json.dump({"command": command, "flags": vars(flags),
                 "cpus": os.cpu_count(), "cpu": host_info.cpu_name(),
                 "machine_matmul_gflops": machine, "results": results}, f,
                indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
