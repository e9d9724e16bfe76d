"""Dense float32 matmul rate of this machine, in GFLOP/s, for JAX or torch.

The yardstick for bench_train.py's "share of the matmul rate": a jitted
jnp.matmul (XLA) or torch.matmul of fixed shapes, timed after a warm-up, on
the threads the training step gets. Runs under either interpreter:

  .venv/bin/python bench/matmul_rate.py                  # JAX, every core
  .venv-hf/bin/python bench/matmul_rate.py --backend torch --threads 2

(`--backend torch` under a python without torch switches to the
repository's .venv-hf, built by `make hf-env`.)

A shape is MxKxN: (M, K) @ (K, N), 2*M*K*N FLOPs. The defaults are a square
2048^3 and the step's widest dense layer at mT5-small, batch 8 x 512 tokens:
(4096 x 512) @ (512 x 1024).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import hf_peer  # bench/, next to this file

DEFAULT_SHAPES = ("2048x2048x2048", "4096x512x1024")


def parse_shape(shape: str) -> tuple[int, int, int]:
  try:
    m, k, n = (int(x) for x in shape.lower().split("x"))
  except ValueError:
    raise ValueError(f"matmul shape {shape!r}: expected MxKxN, e.g. "
                     "2048x2048x2048") from None
  if min(m, k, n) <= 0:
    raise ValueError(f"matmul shape {shape!r}: sizes must be positive")
  return m, k, n


def _median_seconds(call: Callable[[], None], runs: int, warmup: int) -> float:
  for _ in range(warmup):
    call()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _jax_call(m: int, k: int, n: int) -> Callable[[], None]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (m, k), jnp.float32)
  y = jax.random.normal(ky, (k, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  return lambda: jax.block_until_ready(matmul(x, y))


def _torch_call(m: int, k: int, n: int) -> Callable[[], None]:
  import torch  # pylint: disable=g-import-not-at-top
  gen = torch.Generator().manual_seed(0)
  x = torch.randn(m, k, generator=gen)
  y = torch.randn(k, n, generator=gen)
  return lambda: torch.matmul(x, y)


def measure(backend: str, shapes=DEFAULT_SHAPES, runs: int = 7,
            warmup: int = 2) -> dict[str, float]:
  """{shape: median GFLOP/s} of float32 matmuls on `backend` (jax|torch)."""
  makers = {"jax": _jax_call, "torch": _torch_call}
  if backend not in makers:
    raise ValueError(f"matmul backend {backend!r}: expected 'jax' or 'torch'")
  rates = {}
  for shape in shapes:
    m, k, n = parse_shape(shape)
    seconds = _median_seconds(makers[backend](m, k, n), runs, warmup)
    rates[shape] = 2.0 * m * k * n / seconds / 1e9
  return rates


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--backend", choices=("jax", "torch"), default="jax")
  p.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                 help="comma-separated MxKxN")
  p.add_argument("--runs", type=int, default=7)
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch threads (XLA uses every core)")
  flags = p.parse_args(argv)
  if flags.backend == "torch":
    hf_peer.run_under_peer()
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(flags.threads)
  rates = measure(flags.backend, [s for s in flags.shapes.split(",") if s],
                  flags.runs)
  for shape, rate in rates.items():
    print(f"{flags.backend} float32 {shape}: {rate:,.1f} GFLOP/s "
          f"(median of {flags.runs})")


if __name__ == "__main__":
  main()
