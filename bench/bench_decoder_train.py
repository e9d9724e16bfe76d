"""Decoder-only LoRA training: lta vs HF peft + transformers, paired.

The real Qwen2.5-0.5B shape (gin/models/qwen2_5_0_5b.gin) with random
weights that transformers makes once (bench/decoder_bench.py): both sides
train LoRA on the same weights, same tokens, same LoRA rank and targets
(q, k, v, o of every layer), same AdamW, no dropout (Qwen2 has none):

  make bench-decoder-train                          # batch 2 x 128 tokens
  make bench-decoder-train BENCH_ARGS="--pin_cpu 1" # 1 pinned core each
  .venv/bin/python bench/bench_decoder_train.py --gin_binding \
      DecoderConfig.num_layers=4 --rounds 2

Each side runs in a fresh worker process per round, interleaved in rounds
(bench/fair_rounds.py: alternating order, load recorded, loaded rounds
thrown away and repeated). A step is one forward + backward + AdamW update
of the LoRA factors on batch x length tokens: lta's jitted
lta.train.steps.train_step (z-loss 0, so its loss is the mean cross
entropy), HF `Qwen2ForCausalLM` under `peft.get_peft_model` with the mean
cross entropy of the same shifted targets. Reported per side: the median
over rounds of each round's median step time (after --warmup steps; lta
compiles before them), tokens/s = batch * length / step time, and peak RSS
after set-up and at the end; for lta also XLA's memory_analysis of the
compiled step. Correctness: the loss of each side's first step (LoRA B = 0,
so the base model's loss) must agree within --loss_rtol, else the bench
exits 1.
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

import decoder_bench  # bench/, next to this file
import fair_rounds
import hf_peer
import host_info

SIDES = ("lta_lora", "hf_lora")
LABELS = {"lta_lora": "lta LoRA", "hf_lora": "HF peft LoRA"}
HF_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # = lta's attention
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  decoder_bench.add_model_flags(p)
  p.add_argument("--batch", type=int, default=2)
  p.add_argument("--length", type=int, default=128,
                 help="tokens per row (inputs; targets are them shifted)")
  p.add_argument("--rank", type=int, default=8)
  p.add_argument("--lr", type=float, default=2e-4)
  p.add_argument("--steps", type=int, default=3, help="timed steps")
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--loss_rtol", type=float, default=1e-4,
                 help="first-step losses of lta and HF must agree this well")
  fair_rounds.add_flags(p, rounds=3)
  hf_peer.add_flag(p)
  p.add_argument("--json_out", help="also write the results here")
  p.add_argument("--worker", help=argparse.SUPPRESS)
  p.add_argument("--model_dir", help=argparse.SUPPRESS)
  return p.parse_args(argv)


def _tokens(flags, vocab: int):
  """(batch, length + 1) ids: inputs are [:, :-1], targets [:, 1:]."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.random.default_rng(0).integers(
      3, vocab, (flags.batch, flags.length + 1)).astype(np.int32)


def _lta_worker(flags) -> dict:
  # pylint: disable=g-import-not-at-top
  import functools
  import jax
  import optax
  from lta.adapters.config import AdapterConfig
  from lta.models.decoder.network import DecoderOnly
  from lta.models.decoder_only import DecoderOnlyModel
  from lta.train import steps as train_steps

  config = decoder_bench.model_config(flags)
  params = decoder_bench.load_weights(flags.model_dir, config)
  adapter = AdapterConfig(kind="lora", rank=flags.rank,
                          alpha=float(flags.rank))
  model = DecoderOnlyModel(DecoderOnly(config, adapter), z_loss=0.0)
  optimizer = optax.adamw(flags.lr, weight_decay=0.0)
  # `lta train`'s set-up: the base goes to the device leaf by leaf, the
  # random base is never made, and the state keeps the placed base.
  state = decoder_bench.train_state(model, optimizer, params)
  del params
  tokens = _tokens(flags, config.vocab_size)
  batch = jax.device_put({"decoder_input_tokens": tokens[:, :-1],
                          "decoder_target_tokens": tokens[:, 1:]})
  jax.block_until_ready(state)
  setup_rss = host_info.peak_rss_mb()
  start = time.perf_counter()
  step = jax.jit(functools.partial(
      train_steps.train_step, model=model, optimizer=optimizer,
      enable_dropout=False), donate_argnums=(0,)).lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  memory = step.memory_analysis()
  trainable = sum(x.size for x in jax.tree.leaves(state.trainable))
  holder, losses = {"state": state}, []
  del state

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    losses.append(float(metrics["loss"]))

  times = host_info.timed(run, flags.warmup, flags.steps)
  return {"times": times, "first_loss": losses[0], "trainable": int(trainable),
          "setup_rss_mb": setup_rss,
          "steps_peak_rss_mb": host_info.peak_rss_mb(), "compile_s": compile_s,
          "xla_mb": {k: getattr(memory, f"{k}_size_in_bytes") / 2**20
                     for k in ("argument", "output", "alias", "temp")},
          "backend": f"jax {jax.__version__} {jax.default_backend()}, optax "
          f"{optax.__version__}, XLA_FLAGS="
          f"'{os.environ.get('XLA_FLAGS', '')}'"}


def _hf_worker(flags) -> dict:
  # pylint: disable=g-import-not-at-top
  import peft
  import torch
  import transformers

  torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS",
                                          flags.threads)))
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      flags.model_dir, dtype=torch.float32)
  model = peft.get_peft_model(model, peft.LoraConfig(
      r=flags.rank, lora_alpha=flags.rank, lora_dropout=0.0,
      target_modules=list(HF_TARGETS)))
  model.train()
  params = [p for p in model.parameters() if p.requires_grad]
  optimizer = torch.optim.AdamW(params, lr=flags.lr, weight_decay=0.0)
  tokens = torch.from_numpy(_tokens(flags, model.config.vocab_size)).long()
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  setup_rss = host_info.peak_rss_mb()
  losses = []

  def run():
    logits = model(input_ids=inputs).logits
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    losses.append(float(loss.detach()))

  times = host_info.timed(run, flags.warmup, flags.steps)
  return {"times": times, "first_loss": losses[0],
          "trainable": int(sum(p.numel() for p in params)),
          "setup_rss_mb": setup_rss,
          "steps_peak_rss_mb": host_info.peak_rss_mb(),
          "backend": f"torch {torch.__version__} "
          f"({torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(default)')}), transformers "
          f"{transformers.__version__} (attention "
          f"{model.config._attn_implementation}), peft {peft.__version__}"}  # pylint: disable=protected-access


def _run_side(name: str, flags, argv: list[str], model_dir: str) -> dict:
  torch_side = name == "hf_lora"
  python = flags.hf_python if torch_side else sys.executable
  env = fair_rounds.worker_env(flags, torch_side)
  env["PYTHONPATH"] = REPO
  r = fair_rounds.run_worker(fair_rounds.worker_command(
      flags, [python, os.path.abspath(__file__), *argv, f"--worker={name}",
              f"--model_dir={model_dir}"]), env, REPO)
  r["median_s"] = statistics.median(r["times"])
  return r


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  if flags.worker:
    result = (_hf_worker(flags) if flags.worker == "hf_lora" else
              _lta_worker(flags))
    result["load"] = host_info.load()
    print("RESULT " + json.dumps(result), flush=True)
    return 0
  fair_rounds.check_flags(flags)
  hf_peer.check_python(flags.hf_python)
  config = decoder_bench.model_config(flags)
  command = shlex.join([os.path.relpath(sys.executable, REPO),
                        os.path.relpath(os.path.abspath(__file__), REPO),
                        *argv])
  tokens = flags.batch * flags.length
  print(f"command: {command}")
  print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  print(f"model: {decoder_bench.describe(config)}; random float32 weights "
        f"made by transformers, the same on both sides; LoRA r={flags.rank} "
        f"on q, k, v, o of every layer; AdamW lr {flags.lr}, no weight decay;"
        " no dropout")
  print(f"work: batch {flags.batch} x {flags.length} tokens = {tokens:,} "
        f"tokens/step; per round and side the median of {flags.steps} steps "
        f"after {flags.warmup} warm-up, in a fresh process; {flags.rounds} "
        f"rounds ({flags.order})")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), python "
        f"{platform.python_version()}; {fair_rounds.settings(flags)}; load "
        f"avg {host_info.load()} at start", flush=True)
  with decoder_bench.weights(flags, config, fair_rounds.worker_env(
      flags, True)) as model_dir:
    rounds, thrown = fair_rounds.run_rounds(
        SIDES, lambda name: _run_side(name, flags, argv, model_dir), flags)
  rows = _report(rounds, tokens)
  print(f"rounds thrown away for load > {flags.max_load}: {thrown} (cap "
        f"{flags.max_retries}); kept despite load: "
        f"{sum(r.kept_despite_load for r in rounds)}")
  print(f"load avg at end {host_info.load()}")
  losses = {n: rounds[0].results[n]["first_loss"] for n in SIDES}
  loss_gap = abs(losses["lta_lora"] - losses["hf_lora"]) / abs(
      losses["hf_lora"])
  print(f"first-step loss (base model, same weights and tokens): lta "
        f"{losses['lta_lora']:.6f}, HF {losses['hf_lora']:.6f}, relative "
        f"difference {loss_gap:.2e} (tolerance {flags.loss_rtol:g})")
  if flags.json_out:
    with open(flags.json_out, "w") as f:
      json.dump({"command": command, "flags": vars(flags),
                 "model": config.to_dict(), "cpus": os.cpu_count(),
                 "cpu": host_info.cpu_name(),
                 "settings": fair_rounds.settings(flags), "summary": rows,
                 "first_loss": losses, "first_loss_rel_diff": loss_gap,
                 **fair_rounds.rounds_record(rounds, thrown)}, f, indent=2)
  if loss_gap > flags.loss_rtol:
    print("FAILED: lta and HF computed different losses on the same "
          "weights; the timings compare different work", file=sys.stderr)
    return 1
  return 0


def _report(rounds, tokens) -> dict:
  rows = {}
  header = ("side", "trainable params", "step s, median of rounds "
            "(min-max)", "tokens/s", "peak RSS MB after set-up", "peak RSS MB "
            "at end", "XLA args + temps MB")
  print("\n| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for name in SIDES:
    per_round = [r.results[name] for r in rounds]
    t = [x["median_s"] for x in per_round]
    median_s = statistics.median(t)
    mb = per_round[0].get("xla_mb")
    rows[name] = {
        "median_s": median_s, "tokens_per_s": tokens / median_s,
        "round_medians_s": t, "trainable": per_round[0]["trainable"],
        "setup_rss_mb": statistics.median(x["setup_rss_mb"]
                                          for x in per_round),
        "peak_rss_mb": statistics.median(x["steps_peak_rss_mb"]
                                         for x in per_round),
        "xla_total_mb": mb and mb["argument"] + mb["temp"],
        "backend": per_round[0]["backend"]}
    r = rows[name]
    xla = "n/a" if mb is None else f"{r['xla_total_mb']:,.0f}"
    print(f"| {LABELS[name]} | {r['trainable']:,} | {median_s:.2f} "
          f"({min(t):.2f}-{max(t):.2f}) | {r['tokens_per_s']:,.1f} | "
          f"{r['setup_rss_mb']:,.0f} | {r['peak_rss_mb']:,.0f} | {xla} |")
  speed = fair_rounds.paired_ratios(rounds, "lta_lora", "hf_lora",
                                    lambda x: 1.0 / x["median_s"])
  rss = fair_rounds.paired_ratios(rounds, "lta_lora", "hf_lora",
                                  lambda x: x["steps_peak_rss_mb"])
  rows["paired_speed_lta_over_hf"] = speed
  rows["paired_peak_rss_lta_over_hf"] = rss
  print("\npaired ratios (median over rounds, min-max):")
  print(f"  lta LoRA / HF LoRA tokens/s: {fair_rounds.summary(speed)} "
        "(goal >= 1.5)")
  print(f"  lta LoRA / HF LoRA peak RSS: {fair_rounds.summary(rss)} "
        "(goal <= 1.0)")
  for name in SIDES:
    print(f"{LABELS[name]}: {rows[name]['backend']}")
  return rows


if __name__ == "__main__":
  sys.exit(main())
