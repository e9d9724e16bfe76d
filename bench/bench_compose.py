"""Time to compose 11 adapters and merge them, against base-weight I/O.

  python bench/bench_compose.py                    # mT5-xl attention shapes
  python bench/bench_compose.py --layers 4 --repeats 3

LoRA r=4 on q, k, v, o of every encoder self-, decoder self- and cross-
attention (mT5-xl: d_model 2048, 24 + 24 layers, 32 heads x d_kv 64, so
288 kernels of 2048 x 2048, 4.8 GB in float32). Reported, as medians:

  compose factor   Eq. 3 over 11 adapters, element-wise on the factors
  compose delta    the same in delta space, re-factorised to rank 4 by SVD
  merge into base  dW = scale * A @ B of the composed adapter added to
                   every base attention kernel
  write base       the base attention kernels written once (safetensors)
  read base        and read back once
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lta.arithmetic import compositions as arithmetic  # noqa: E402
from lta.adapters import deltas  # noqa: E402
from lta.adapters.config import AdapterConfig  # noqa: E402
from lta.adapters.manifest import Adapter, AdapterManifest  # noqa: E402
from lta.adapters.tree import flatten_tree, unflatten_tree  # noqa: E402
from lta.languages.related import XLSUM_SEEN  # noqa: E402


def modules(layers: int) -> list[str]:
  out = []
  for i in range(layers):
    for p in ("query", "key", "value", "out"):
      out.append(f"encoder/layers_{i}/attention/{p}")
      out.append(f"decoder/layers_{i}/self_attention/{p}")
      out.append(f"decoder/layers_{i}/encoder_decoder_attention/{p}")
  return out


def make_adapter(rng, mods, d_model, inner, config, lang):
  flat = {}
  for m in mods:
    d_in, d_out = (inner, d_model) if m.endswith("/out") else (d_model, inner)
    flat[f"{m}/lora_a"] = rng.standard_normal((d_in, config.rank), np.float32)
    flat[f"{m}/lora_b"] = rng.standard_normal((config.rank, d_out),
                                              np.float32) * 0.01
  tree = unflatten_tree(flat)
  manifest = AdapterManifest.for_tree(
      tree, config, base_model_fingerprint="sha256:bench",
      base_model_name="mt5-xl-shaped", task="xlsum", language=lang)
  return Adapter(tree, manifest)


def timed(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--layers", type=int, default=24,
                      help="encoder layers = decoder layers (mT5-xl: 24)")
  parser.add_argument("--d_model", type=int, default=2048)
  parser.add_argument("--heads", type=int, default=32)
  parser.add_argument("--d_kv", type=int, default=64)
  parser.add_argument("--rank", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  inner = args.heads * args.d_kv
  mods = modules(args.layers)
  config = AdapterConfig(kind="lora", rank=args.rank, alpha=float(args.rank))
  rng = np.random.default_rng(0)
  adapters = {l: make_adapter(rng, mods, args.d_model, inner, config, l)
              for l in XLSUM_SEEN}
  base = {}
  for m in mods:
    shape = (inner, args.d_model) if m.endswith("/out") else (args.d_model,
                                                              inner)
    base[f"{m}/kernel"] = rng.standard_normal(shape, np.float32)
  base_tree = unflatten_tree(base)
  base_bytes = sum(v.nbytes for v in base.values())

  def compose(space):
    return arithmetic.compose("task_only_add_all", task_vectors=adapters,
                              target="pt", space=space)

  adapter = compose("factor")
  composed, manifest = adapter.tree, adapter.manifest

  def merge():
    deltas.merge_into_base(base_tree, composed, manifest.config)

  rows = [("compose factor (11 adapters)", timed(lambda: compose("factor"),
                                                 args.repeats)),
          ("compose delta + SVD (11 adapters)",
           timed(lambda: compose("delta"), args.repeats)),
          ("merge into base", timed(merge, args.repeats))]
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "base.safetensors")
    rows.append(("write base (safetensors)",
                 timed(lambda: save_file(base, path), args.repeats)))
    rows.append(("read base (safetensors)",
                 timed(lambda: load_file(path), args.repeats)))

  adapter_params = sum(v.size for v in flatten_tree(
      adapters["en"].tree).values())
  print(f"{len(mods)} kernels, d_model {args.d_model}, inner {inner}, "
        f"{args.layers}+{args.layers} layers; LoRA r={args.rank}: "
        f"{adapter_params / 1e6:.2f} M params per adapter; base attention "
        f"{base_bytes / 2**30:.2f} GiB float32; median of {args.repeats}")
  print(f"{'step':<36}{'seconds':>10}{'x read':>10}")
  read = rows[-1][1]
  for name, t in rows:
    print(f"{name:<36}{t:>10.3f}{t / read:>10.2f}")


if __name__ == "__main__":
  main()
