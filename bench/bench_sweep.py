"""An 11-point λ sweep against one evaluation plus one compile (issue #18).

  python bench/bench_sweep.py                  # mT5-small shape, 3 rounds
  python bench/bench_sweep.py --quick          # a tiny shape: checks it runs

Each λ runs what `lta eval`'s λ selection runs (lta.eval.composed): compose
lang_task_add at λ, merge ΔW into the base (merged_variables), then greedy-
decode every example batch with composed.decode_side_by_side, the call
MergedScorer.score_all makes: the changed kernels of --per_call λ stacked
on the device beside the base's device copy, one vmapped predict_batch per
batch for all of them. Detokenising and ROUGE are left out (the same per-λ
cost in every variant). Workers, each in a fresh process, interleaved in
rounds (bench/fair_rounds.py: ABBA order, load recorded, loaded rounds
repeated):

  one         one λ twice: the first call compiles, the second is one
              evaluation; compile = first - second
  sweep       --points λ from a fresh process, --per_call side by side:
              LoRA on every attention, so the encoder changes with λ and
              runs for every λ
  sweep_alone the same, each λ decoded alone (--per_call 1: lta before
              side-by-side decoding; the optimisation's "before", paired)
  sweep_dec   `sweep` with decoder-only adapters: the base's encoder
              outputs are computed once per batch and reused (EncoderReuse)

Reported per round (paired) and as medians over rounds: sweep / (points x
eval + compile), the goal being <= 1 (issue #18: an 11-point sweep at most
11x one evaluation plus one compile), sweep / first call, the XLA
compilations each sweep made, and sweep_alone / sweep.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fair_rounds  # noqa: E402
import host_info  # noqa: E402

VARIANTS = ("one", "sweep", "sweep_alone", "sweep_dec")
SWEEPS = VARIANTS[1:]
QUICK = dict(layers=1, d_model=32, heads=2, d_kv=16, d_ff=64, vocab=128,
             batch=2, examples=4, inputs=16, decode=4, points=3, rounds=1)


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true", help="a tiny shape")
  p.add_argument("--layers", type=int, default=8,
                 help="encoder layers = decoder layers (mT5-small: 8)")
  p.add_argument("--d_model", type=int, default=512)
  p.add_argument("--heads", type=int, default=6)
  p.add_argument("--d_kv", type=int, default=64)
  p.add_argument("--d_ff", type=int, default=1024)
  p.add_argument("--vocab", type=int, default=250112)
  p.add_argument("--rank", type=int, default=4)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--examples", type=int, default=16,
                 help="examples decoded per λ (batches of --batch)")
  p.add_argument("--inputs", type=int, default=512, help="input length")
  p.add_argument("--decode", type=int, default=64, help="tokens per row")
  p.add_argument("--points", type=int, default=11, help="λ of the sweep")
  p.add_argument("--per_call", type=int, default=4,
                 help="λ decoded side by side (run_eval.adapters_per_call)")
  fair_rounds.add_flags(p, rounds=3)
  p.add_argument("--json_out", help="also write the results here")
  p.add_argument("--worker", help=argparse.SUPPRESS)  # a variant
  flags = p.parse_args(argv)
  if flags.quick:
    p.set_defaults(**QUICK)
    flags = p.parse_args(argv)
  fair_rounds.check_flags(flags)
  return flags


def _setup(flags, decoder_only_adapters: bool):
  """(model, base params, task and language vectors, examples)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from lta.adapters.config import AdapterConfig  # pylint: disable=g-import-not-at-top
  from lta.adapters.manifest import Adapter, AdapterManifest  # pylint: disable=g-import-not-at-top
  from lta.models import families  # pylint: disable=g-import-not-at-top
  from lta.models.mt5.config import T5Config  # pylint: disable=g-import-not-at-top

  config = T5Config(vocab_size=flags.vocab, d_model=flags.d_model,
                    d_kv=flags.d_kv, num_heads=flags.heads, d_ff=flags.d_ff,
                    num_encoder_layers=flags.layers,
                    num_decoder_layers=flags.layers, dropout_rate=0.0,
                    name="bench-sweep")
  lora = AdapterConfig(kind="lora", rank=flags.rank,
                       alpha=float(flags.rank))
  model = families.build_model(config, lora)
  variables = jax.jit(model.init_unboxed)(jax.random.PRNGKey(0))
  params = jax.device_get(variables["params"])
  rng = np.random.default_rng(1)

  def vector(task, language):
    tree = jax.tree.map(  # lora_b starts at zero; a trained one's is not
        lambda x: (0.02 * rng.standard_normal(x.shape)).astype(np.float32),
        jax.device_get(variables["adapters"]))
    if decoder_only_adapters:
      tree = {"decoder": tree["decoder"]}
    manifest = AdapterManifest.for_tree(
        tree, lora, base_model_fingerprint="sha256:bench",
        base_model_name="bench-sweep", task=task, language=language)
    return Adapter(tree, manifest, name=f"{task}_{language}")

  vectors = ({"en": vector("xlsum", "en")},
             {"pt": vector("mc4_prefix_lm", "pt")})
  # Inputs without pad (0) or EOS (1): every row is --inputs tokens long.
  examples = [{"inputs": rng.integers(2, flags.vocab, flags.inputs)}
              for _ in range(flags.examples)]
  return model, params, vectors, examples


def worker(flags) -> dict:
  """One variant in this process; prints its RESULT line."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from lta.arithmetic import compositions  # pylint: disable=g-import-not-at-top
  from lta.eval import compilations  # pylint: disable=g-import-not-at-top
  from lta.eval import composed  # pylint: disable=g-import-not-at-top
  from lta.eval import scoring  # pylint: disable=g-import-not-at-top
  from lta.models.contract import DecodingConfig  # pylint: disable=g-import-not-at-top

  variant = flags.worker
  model, params, (tasks, langs), examples = _setup(
      flags, decoder_only_adapters=variant == "sweep_dec")
  predict = scoring.make_predict_fn(
      model, DecodingConfig(max_decode_length=flags.decode))
  base_on_device = jax.device_put({"params": params})
  reuse = scoring.EncoderReuse(model, base_on_device)

  def evaluate(lambdas, per_call):
    merged = [composed.merged_variables(params, compositions.compose(
        "lang_task_add", task_vectors=tasks, language_vectors=langs,
        target="pt", sources="en", lam=lam)) for lam in lambdas]
    encoder_unchanged = all(unchanged for _, unchanged in merged)
    ids = composed.decode_side_by_side(
        predict, [variables for variables, _ in merged], params,
        base_on_device["params"], examples, flags.batch, flags.inputs,
        per_call, encoder=reuse if encoder_unchanged else None)
    return np.stack(ids), encoder_unchanged

  times = []
  with compilations.counting() as compiled:
    t_all = time.perf_counter()
    if variant == "one":
      for _ in range(2):
        t = time.perf_counter()
        ids, encoder_unchanged = evaluate([0.5], 1)
        times.append(time.perf_counter() - t)
    else:
      ids, encoder_unchanged = evaluate(
          [i / (flags.points - 1) for i in range(flags.points)],
          1 if variant == "sweep_alone" else flags.per_call)
    wall = time.perf_counter() - t_all
  return {"variant": variant, "times": times, "wall": wall,
          "compilations": len(compiled.names),
          "predict_compilations": len(compiled.of("predict_batch")),
          "encoder_reused": bool(encoder_unchanged),
          "last_ids_sum": int(ids[-1].sum()),
          "backend": f"jax {jax.__version__} on {jax.default_backend()}"}


def report(flags, rounds) -> list[dict]:
  rows = []
  for i, r in enumerate(rounds):
    one, first = r.results["one"]["times"][1], r.results["one"]["times"][0]
    compile_s = max(first - one, 0.0)
    row = {"round": i + 1, "eval_s": one, "compile_s": compile_s,
           "first_call_s": first, "others_load": r.others_load}
    for name in SWEEPS:
      sweep = r.results[name]
      row[name] = {"wall_s": sweep["wall"],
                   "vs_goal": sweep["wall"] / (flags.points * one +
                                               compile_s),
                   "vs_first_call": sweep["wall"] / first,
                   "compilations": sweep["compilations"],
                   "predict_compilations": sweep["predict_compilations"],
                   "encoder_reused": sweep["encoder_reused"],
                   "last_ids_sum": sweep["last_ids_sum"]}
    rows.append(row)
  print(f"{'round':<7}{'eval s':>8}{'compile s':>10}" + "".join(
      f"{n + ' s':>12}{'/goal':>8}{'/first':>8}{'compiles':>9}"
      for n in SWEEPS) + f"{'others load':>13}")
  for row in rows:
    print(f"{row['round']:<7}{row['eval_s']:>8.2f}{row['compile_s']:>10.2f}"
          + "".join(f"{row[n]['wall_s']:>12.2f}{row[n]['vs_goal']:>8.3f}"
                    f"{row[n]['vs_first_call']:>8.2f}"
                    f"{row[n]['compilations']:>9}"
                    for n in SWEEPS)
          + f"{row['others_load']:>13.2f}")
  for n in SWEEPS:
    ratios = [row[n]["vs_goal"] for row in rows]
    print(f"{n}: {flags.points}-point sweep / ({flags.points} x eval + "
          f"compile), paired, median (min-max) over rounds: "
          f"{fair_rounds.summary(ratios)}; goal <= 1; predict_batch "
          f"compiled {rows[0][n]['predict_compilations']}x; encoder "
          f"outputs reused: {rows[0][n]['encoder_reused']}")
  speedups = [row["sweep_alone"]["wall_s"] / row["sweep"]["wall_s"]
              for row in rows]
  same = all(row["sweep"]["last_ids_sum"] == row["sweep_alone"]["last_ids_sum"]
             for row in rows)
  print(f"side by side ({flags.per_call} per call) against each λ alone: "
        "sweep_alone / sweep wall, paired, median (min-max): "
        f"{fair_rounds.summary(speedups)}; the last λ's ids equal: {same}")
  return rows


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  flags = parse(argv)
  if flags.worker:
    print("RESULT " + json.dumps(worker(flags)), flush=True)
    return 0
  command = shlex.join(["python", "bench/bench_sweep.py", *argv])
  print(f"command: {command}")
  print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  print(f"model: mT5-shaped d_model={flags.d_model} d_ff={flags.d_ff} "
        f"heads={flags.heads} d_kv={flags.d_kv} layers={flags.layers}+"
        f"{flags.layers} vocab={flags.vocab}, random weights, float32; LoRA "
        f"r={flags.rank} on q,k,v,o of every attention (sweep_dec: decoder "
        "attentions only); composition lang_task_add; "
        f"{flags.per_call} λ per call")
  print(f"work per λ: compose + merge + {flags.examples} examples in "
        f"batches of {flags.batch}, inputs {flags.inputs}, greedy decode "
        f"{flags.decode} tokens; {flags.rounds} rounds ({flags.order})")
  print(f"machine: {os.cpu_count()} CPUs ({host_info.cpu_name()}), python "
        f"{platform.python_version()}; {fair_rounds.settings(flags)}; load "
        f"avg {host_info.load()} at start", flush=True)

  def run_one(variant):
    cmd = [sys.executable, os.path.abspath(__file__), *argv,
           f"--worker={variant}"]
    return fair_rounds.run_worker(fair_rounds.worker_command(flags, cmd),
                                  fair_rounds.worker_env(flags, False), REPO)

  rounds, thrown = fair_rounds.run_rounds(list(VARIANTS), run_one, flags)
  rows = report(flags, rounds)
  print(f"{rounds[0].results['one']['backend']}; rounds thrown away for "
        f"load > {flags.max_load}: {thrown}; load avg at end "
        f"{host_info.load()}")
  if flags.json_out:
    with open(flags.json_out, "w") as f:
      json.dump({"command": command, "flags": vars(flags), "rows": rows,
                 "settings": fair_rounds.settings(flags),
                 **fair_rounds.rounds_record(rounds, thrown)}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
