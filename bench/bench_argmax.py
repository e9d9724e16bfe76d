"""jnp.argmax against lta's first_argmax where lta takes an argmax over the
vocabulary (issue #18):

  python bench/bench_argmax.py              # 2 threads (every core)
  python bench/bench_argmax.py --threads 1  # then pin it: taskset -c 1

* decode: one greedy step's head on the mT5-small shape: logits = x @ W
  (batch 8, d_model 512, vocab 250,112), the chosen token and its log-prob,
  as `lta.models.decoding`'s loop computes them, before (jnp.argmax and a
  full log_softmax) and after (first_argmax and one logsumexp);
* loss: the training loss's per-token terms on [8, 64, 250112] float32
  logits (logsumexp, target logit, argmax == target for the accuracy).

Both variants are compiled first, then timed in alternating order; the
figures are medians and the paired old / new ratio. Their outputs are
checked equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--threads", type=int, default=0,
                 help="XLA threads (0: every core)")
  p.add_argument("--repeats", type=int, default=15)
  return p.parse_args(argv)


def main(argv=None) -> int:
  flags = parse(sys.argv[1:] if argv is None else argv)
  if flags.threads == 1:
    os.environ["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                               "intra_op_parallelism_threads=1")
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from lta.models import decoding  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.standard_normal((512, 250112), np.float32) * 0.05)
  x = jnp.asarray(rng.standard_normal((8, 512), np.float32))
  logits = jnp.asarray(rng.standard_normal((8, 64, 250112), np.float32))
  targets = jnp.asarray(rng.integers(0, 250112, (8, 64)), jnp.int32)

  def head(argmax, log_prob):
    def step(x, w):
      scores = x @ w
      token = argmax(scores)
      return token, log_prob(scores, token)
    return jax.jit(step)

  def old_log_prob(scores, token):
    return jnp.take_along_axis(jax.nn.log_softmax(scores), token[:, None],
                               -1)[:, 0]

  def loss_terms(argmax):
    def terms(logits, targets):
      log_z = jax.nn.logsumexp(logits, -1)
      target = jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
      correct = (argmax(logits) == targets).astype(jnp.float32)
      return (log_z - target).sum(), correct.sum()
    return jax.jit(terms)

  argmax = lambda s: jnp.argmax(s, -1)
  cases = {
      "decode head + token + log-prob, [8, 512] @ [512, 250112]": (
          head(argmax, old_log_prob),
          head(decoding.first_argmax,
               decoding._log_prob_of),  # pylint: disable=protected-access
          (x, w)),
      "loss terms with accuracy, [8, 64, 250112]": (
          loss_terms(argmax), loss_terms(decoding.first_argmax),
          (logits, targets)),
  }
  print(f"command: python bench/bench_argmax.py {' '.join(sys.argv[1:])}")
  print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"jax {jax.__version__}; XLA threads: "
        f"{flags.threads or 'every core'}; load avg "
        f"{'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
  print("| case | jnp.argmax ms | first_argmax ms | old / new, paired |")
  print("|---|---:|---:|---:|")
  for name, (old, new, args) in cases.items():
    for a, b in zip(jax.device_get(old(*args)), jax.device_get(new(*args))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    times = {old: [], new: []}
    for i in range(flags.repeats):
      for f in (old, new) if i % 2 == 0 else (new, old):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times[f].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times[old], times[new])]
    print(f"| {name} | {np.median(times[old]) * 1e3:.1f} | "
          f"{np.median(times[new]) * 1e3:.1f} | {np.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f}) |")
  print(f"load avg at end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
