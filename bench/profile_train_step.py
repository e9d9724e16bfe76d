"""Where an lta training step's time goes: per-operation times of one step
from JAX's profiler, and the page faults of each step (issue #18).

  python bench/profile_train_step.py                        # 2 threads
  taskset -c 1 python bench/profile_train_step.py --threads 1
  python bench/profile_train_step.py --config lta_lora@dropout8_system_malloc

The model, work and configurations are bench_train.py's (its flags apply:
--vocab, --layers, ...). Prints the step times and minor page faults of
--steps steps after compilation, then, for one traced step, each runtime
thread's time in operations, the time of each kind of operation (summed
over threads) and the --top operations (fusion names as in the compiled
HLO: `--hlo_out FILE` writes it).
"""

import argparse
import collections
import glob
import os
import re
import resource
import sys
import tempfile
import time

import bench_train  # bench/, next to this file


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="lta_lora@dropout8",
                 help="an lta configuration of bench_train.py")
  p.add_argument("--threads", type=int, default=0,
                 help="XLA threads (0: every core)")
  p.add_argument("--profile_steps", type=int, default=3)
  p.add_argument("--top", type=int, default=25)
  p.add_argument("--hlo_out", default="")
  return p.parse_known_args(argv)


def main(argv=None) -> int:
  flags, rest = parse(sys.argv[1:] if argv is None else argv)
  base, variant = bench_train.split_config(flags.config)
  if base not in ("lta_lora", "lta_full"):
    raise SystemExit(f"--config={flags.config!r}: an lta configuration, "
                     "e.g. lta_lora@dropout8")
  bench_train._check_configs([flags.config])  # pylint: disable=protected-access
  env = bench_train.VARIANTS.get(variant, {}).get("env", {})
  if flags.threads == 1:
    env = {**env, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
           "intra_op_parallelism_threads=1"}
  if any(os.environ.get(k) != v for k, v in env.items()):
    # Malloc and XLA settings act at start-up: run again with them set.
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, **env})
  import jax  # pylint: disable=g-import-not-at-top
  model_flags = bench_train._flags(rest)  # pylint: disable=protected-access
  step, state, batch, *_ = bench_train.lta_step(
      model_flags, base == "lta_full", variant)
  if flags.hlo_out:
    with open(flags.hlo_out, "w") as f:
      f.write(step.lower(state, batch).compile().as_text())

  def run(state):
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics["loss"])
    return state

  print(f"config {flags.config}; XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}'"
        f"; LTA_HOST_MALLOC={os.environ.get('LTA_HOST_MALLOC', '(keep)')}")
  for i in range(flags.profile_steps + 1):
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    state = run(state)
    print(f"step {i}{' (compiles)' if i == 0 else ''}: "
          f"{time.perf_counter() - start:.2f} s, minor page faults "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults:,}")
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    start = time.perf_counter()
    state = run(state)
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    trace = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]
    data = jax.profiler.ProfileData.from_file(trace)
  total = collections.Counter()
  busy = collections.Counter()  # per runtime thread
  for plane in data.planes:
    for line in plane.lines:
      if line.name == "python":
        continue
      for event in line.events:  # HLO operations; not the runtime's calls
        if not any(c in event.name for c in ":()$"):
          total[event.name] += event.duration_ns
          busy[line.name] += event.duration_ns
  kinds = collections.Counter()
  for name, ns in total.items():
    kinds[re.sub(r"\.\d+$", "", name)] += ns
  print(f"\ntraced step: {wall:.2f} s; operations' time per thread (s): "
        + ", ".join(f"{ns / 1e9:.2f}" for _, ns in busy.most_common()))
  print("| kind of operation | ms, all threads | share of the summed time |"
        "\n|---|---:|---:|")
  summed = sum(kinds.values())
  for name, ns in kinds.most_common(flags.top):
    print(f"| {name} | {ns / 1e6:.1f} | {ns / summed:.1%} |")
  print(f"\nits {flags.top} longest operations:")
  print("| operation | ms | share of the step |\n|---|---:|---:|")
  for name, ns in total.most_common(flags.top):
    print(f"| {name} | {ns / 1e6:.1f} | {ns / 1e9 / wall:.1%} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
