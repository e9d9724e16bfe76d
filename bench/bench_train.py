"""Training-step speed and peak memory: lta LoRA, lta full FT, HF peft LoRA.

Same mT5-small-shaped model (random weights), same batch, AdamW, one CPU
process per configuration (so each peak RSS is its own):

  .venv/bin/python bench/bench_train.py                      # mT5-small shape
  .venv/bin/python bench/bench_train.py --vocab 32128 --layers 4 --steps 3

The HF side (torch + transformers + peft) runs under --hf_python, a separate
environment. Reported: median step time over --steps timed steps (after
--warmup steps, which include compilation), tokens/s = batch * (inputs +
targets) / step time, RSS after set-up and peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = ("lta_lora", "lta_full", "hf_lora")
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
  p.add_argument("--hf_python", default="/work/fixenv/bin/python")
  p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
  return p.parse_args(argv)


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
  import jax
  import numpy as np
  import optax
  from lta import train_state
  from lta import trainer
  from lta.model.config import T5Config
  from lta.model.network import Transformer
  from lta.models import EncoderDecoderModel
  from lta.peft.config import AdapterConfig

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
      optimizer=optimizer))(variables)
  del variables
  enc, tgt = _tokens(flags)
  dec_in = np.concatenate([np.zeros((flags.batch, 1), np.int64),
                           tgt[:, :-1]], 1)
  batch = jax.device_put({
      "encoder_input_tokens": enc.astype(np.int32),
      "decoder_input_tokens": dec_in.astype(np.int32),
      "decoder_target_tokens": tgt.astype(np.int32)})
  step = jax.jit(functools.partial(trainer.train_step, model=model,
                                   optimizer=optimizer), donate_argnums=(0,))
  trainable = sum(x.size for x in jax.tree.leaves(state.trainable))
  setup_rss = _peak_rss_mb()
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics["loss"])

  return {"times": _timed(run, flags), "trainable": int(trainable),
          "setup_rss_mb": setup_rss, "backend": f"jax {jax.__version__} "
          f"{jax.default_backend()}"}


def _hf_worker(flags) -> dict:
  import peft  # pylint: disable=g-import-not-at-top
  import torch
  import transformers

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

  return {"times": _timed(run, flags),
          "trainable": int(sum(p.numel() for p in params)),
          "setup_rss_mb": setup_rss,
          "backend": f"torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), peft {peft.__version__}"}


def _worker(flags) -> None:
  if flags.worker == "hf_lora":
    result = _hf_worker(flags)
  else:
    result = _lta_worker(flags, full=flags.worker == "lta_full")
  result["peak_rss_mb"] = _peak_rss_mb()
  print("RESULT " + json.dumps(result), flush=True)


def _run_config(name: str, flags, argv: list[str]) -> dict:
  python = flags.hf_python if name == "hf_lora" else sys.executable
  if not os.path.exists(python):
    raise FileNotFoundError(f"--hf_python={python} does not exist")
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("XLA_FLAGS", None)  # one device, like the torch side
  proc = subprocess.run([python, os.path.abspath(__file__), *argv,
                         f"--worker={name}"], env=env, cwd=REPO,
                        capture_output=True, text=True, check=False)
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n"
                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  flags = _flags(argv)
  if flags.worker:
    _worker(flags)
    return 0
  names = [n for n in flags.configs.split(",") if n]
  unknown = sorted(set(names) - set(CONFIGS))
  if unknown:
    raise ValueError(f"--configs: unknown {unknown}; choose from {CONFIGS}")
  tokens = flags.batch * (flags.inputs + flags.targets)
  print(f"model: d_model={flags.d_model} d_ff={flags.d_ff} heads={flags.heads}"
        f" d_kv={flags.d_kv} layers={flags.layers}+{flags.layers} "
        f"vocab={flags.vocab}; batch {flags.batch} x (inputs {flags.inputs} + "
        f"targets {flags.targets}); LoRA rank {flags.rank} on q,k,v,o; "
        f"AdamW; dropout {flags.dropout}; median of {flags.steps} steps after "
        f"{flags.warmup} warm-up; {os.cpu_count()} CPUs", flush=True)
  rows = []
  for name in names:
    r = _run_config(name, flags, argv)
    median = statistics.median(r["times"])
    rows.append((name, r["trainable"], median, tokens / median,
                 r["setup_rss_mb"], r["peak_rss_mb"], r["backend"]))
    print(f"  done {name}: {median:.3f} s/step", flush=True)
  header = ("config", "trainable params", "step s (median)", "tokens/s",
            "RSS after setup MB", "peak RSS MB", "backend")
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for name, trainable, median, tps, setup, peak, backend in rows:
    print(f"| {name} | {trainable:,} | {median:.3f} | {tps:,.0f} | "
          f"{setup:,.0f} | {peak:,.0f} | {backend} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
