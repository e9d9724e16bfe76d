"""The miniature reproduction: the paper's pipeline over several seeds.

`lta.pipeline.run` runs the experiment once. This module runs it for every seed
of `MiniatureConfig.seeds` on one synthetic world and one vocabulary (fixed
by `PipelineConfig.world_seed`), and by default one pre-trained base (the
paper composes adapters of one fixed mT5 checkpoint). A seed sets adapter
initialisation and data order, and the base's too with `share_base=False`.
It then aggregates across seeds: per target and method the mean, sample
standard deviation, minimum and maximum of every metric; a Table-1-style
Markdown table; bar and λ plots; every per-seed number in one JSON; and a
verdict computed from the numbers, whatever they say.

  lta miniature --gin_file=experiments/miniature.gin
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Mapping, Optional, Sequence

import gin
import jax
import numpy as np

from lta import errors
from lta.eval import effect_heatmap
from lta.eval import methods as method_registry
from lta.eval import paired_bootstrap
from lta.pipeline import paired_results
from lta.pipeline import qa as qa_stage
from lta.pipeline import rescoring
from lta.eval.across_seeds import stats
from lta.pipeline import run as pipeline
from lta.eval import report as reporting
from lta.models import families
from lta.adapters.config import AdapterConfig

BASELINE = method_registry.label("task_only")
METHOD = method_registry.label("lang_task_add_subtract")
AVG = "avg"
OUTCOMES = {"beats": "beats the baseline in every seed",
            "beats_on_average":
                "beats the baseline on average, but not in every seed",
            "ties": "ties with the baseline",
            "does_not_beat": "does not beat the baseline"}
METRIC_NAMES = {"rouge2": "ROUGE-2 (spm)", "exact_match": "exact match (%)",
                "language_fidelity": "target-language fidelity (%)",
                "content_any_language": "right content, any language (%)",
                "f1": "SQuAD F1", "em": "SQuAD exact match (%)"}
# Table 4's metrics (MiniatureConfig.qa): the first one is the verdict's.
QA_METRICS = ("f1", "em", "language_fidelity")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MiniatureConfig:
  """The seeds and what they vary; PipelineConfig holds everything else."""
  workdir: str = "lta_runs/miniature"
  seeds: tuple[int, ...] = (0, 1, 2)
  # One base for every seed, pre-trained with the first seed (True), or one
  # base per seed (False: the spread then includes pre-training).
  share_base: bool = True
  # Reported metrics; the first one is the verdict's.
  metrics: tuple[str, ...] = ("rouge2", "exact_match", "language_fidelity")
  # Persist XLA compilations under <workdir>/jax_cache: every seed trains
  # the same shapes, so later seeds skip compiling.
  compilation_cache: bool = True
  # The paired bootstrap of every method's difference to the baseline
  # (lta.eval.paired_bootstrap): replicates and interval level.
  bootstrap_samples: int = paired_bootstrap.NUM_SAMPLES
  confidence: float = paired_bootstrap.CONFIDENCE
  # Figure 2: add and subtract against the task vector of every source
  # with task data (PipelineConfig.task_sources), to every target.
  by_source: bool = False
  # Ablations of add and subtract, each one PipelineConfig field changed
  # (lta.pipeline.rescoring.ABLATABLE): "space=delta",
  # "language_steps=1000", "lambdas=0.3/0.5/0.7".
  ablations: tuple[str, ...] = ()
  # Table 4: the QA-like task vector of the source (lta.pipeline.qa),
  # composed with the same language vectors (experiments/miniature_qa.gin).
  qa: bool = False

  def __post_init__(self):
    for text in self.ablations:
      rescoring.parse_ablation(text)
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise errors.ConfigError(f"MiniatureConfig.seeds must be distinct and "
                               f"non-empty, got {self.seeds}")
    if not self.metrics:
      raise errors.ConfigError("MiniatureConfig.metrics is empty")


def seed_config(mcfg: MiniatureConfig, pcfg: pipeline.PipelineConfig,
                seed: int) -> pipeline.PipelineConfig:
  """The pipeline run of one seed: own adapters, shared data (and base)."""
  return dataclasses.replace(
      pcfg, workdir=os.path.join(mcfg.workdir, f"seed_{seed}"), seed=seed,
      data_dir=os.path.join(mcfg.workdir, "data"),
      base_dir=(os.path.join(mcfg.workdir, "base") if mcfg.share_base
                else None))


def _read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def collect_seed(workdir: str) -> dict[str, Any]:
  """One seed's numbers, from the files its pipeline run wrote."""
  results = os.path.join(workdir, "results")
  return {"scores": _read_json(os.path.join(results, "scores.json")),
          "lambda_sweeps": _read_json(
              os.path.join(results, "lambda_sweeps.json")),
          "sanity": _read_json(os.path.join(results, "sanity.json"))}


# --- aggregation ------------------------------------------------------------

def seed_values(per_seed: Mapping[str, Mapping[str, Any]], method: str,
                lang: str, metric: str) -> list[float]:
  """The metric across seeds; lang AVG is each seed's mean over targets."""
  out = []
  for record in per_seed.values():
    by_lang = record["scores"][method]
    if lang == AVG:
      out.append(float(np.mean([by_lang[t][metric] for t in by_lang])))
    else:
      out.append(float(by_lang[lang][metric]))
  return out


def aggregate(per_seed: Mapping[str, Mapping[str, Any]],
              methods: Sequence[str], targets: Sequence[str],
              metrics: Sequence[str]) -> dict[str, Any]:
  """method -> target (and AVG) -> metric -> stats across seeds."""
  return {m: {t: {k: stats(seed_values(per_seed, m, t, k)) for k in metrics}
              for t in list(targets) + [AVG]}
          for m in methods}


def deltas(per_seed: Mapping[str, Mapping[str, Any]], method: str,
           targets: Sequence[str], metric: str,
           baseline: str = BASELINE) -> dict[str, list[float]]:
  """target (and AVG) -> per-seed `method` minus `baseline`."""
  return {t: [a - b for a, b in zip(seed_values(per_seed, method, t, metric),
                                    seed_values(per_seed, baseline, t,
                                                metric))]
          for t in list(targets) + [AVG]}


def verdict(per_seed: Mapping[str, Mapping[str, Any]],
            targets: Sequence[str], metric: str, method: str = METHOD,
            baseline: str = BASELINE) -> dict[str, Any]:
  """Does `method` beat `baseline` on `metric`? Counted, not asserted."""
  d = deltas(per_seed, method, targets, metric, baseline)
  per_target = {t: stats(d[t]) for t in targets}
  better = [t for t in targets if per_target[t]["mean"] > 0]
  worse = [t for t in targets if per_target[t]["mean"] < 0]
  pairs = [x for t in targets for x in d[t]]
  avg = stats(d[AVG])
  n_seeds = len(d[AVG])
  seeds_better = sum(x > 0 for x in d[AVG])
  if avg["mean"] > 0 and seeds_better == n_seeds:
    outcome = "beats"
  elif avg["mean"] > 0:
    outcome = "beats_on_average"
  elif avg["mean"] == 0:
    outcome = "ties"
  else:
    outcome = "does_not_beat"
  name = METRIC_NAMES.get(metric, metric)
  sentence = (
      f"{name}: {method} {OUTCOMES[outcome]}. Better on "
      f"{len(better)} of {len(targets)} targets (mean over {n_seeds} seeds; "
      f"worse on {len(worse)}), mean Δ = {avg['mean']:+.2f} ± "
      f"{avg['std']:.2f} (std across seeds of the target average; min "
      f"{avg['min']:+.2f}, max {avg['max']:+.2f}); better in "
      f"{sum(x > 0 for x in pairs)} of {len(pairs)} (seed, target) pairs, "
      f"worse in {sum(x < 0 for x in pairs)}.")
  return {"metric": metric, "method": method, "baseline": baseline,
          "outcome": outcome, "targets_better": better,
          "targets_worse": worse, "n_targets": len(targets),
          "pairs_better": sum(x > 0 for x in pairs), "n_pairs": len(pairs),
          "seeds_better": seeds_better, "n_seeds": n_seeds,
          "delta_avg": avg, "delta_per_target": per_target,
          "sentence": sentence}


# --- paired statistics over examples and seeds (lta.pipeline.paired_results)

def _effect(record: Mapping[str, Any]) -> paired_bootstrap.PairedEffect:
  fields = {f.name for f in dataclasses.fields(paired_bootstrap.PairedEffect)}
  return paired_bootstrap.PairedEffect(
      **{k: v for k, v in record.items() if k in fields})


def paired_verdicts(effects: Mapping[str, Any], method: str = METHOD
                    ) -> list[str]:
  """Per metric, one sentence worded from `method`'s interval (target avg)."""
  return [paired_bootstrap.verdict_sentence(
      _effect(by_method[method][AVG]), method, METRIC_NAMES.get(k, k))
          for k, by_method in effects.items() if method in by_method]


def paired_table(effects: Mapping[str, Any], targets: Sequence[str],
                 metric: str) -> str:
  """Δ over the baseline: mean [CI] per method and target; ▲/▼ = excludes 0."""
  by_method = effects[metric]
  cols = list(targets) + [AVG]
  first = _effect(next(iter(by_method.values()))[AVG])
  lines = [f"### Δ {METRIC_NAMES.get(metric, metric)} over the baseline, "
           f"paired over {first.n_seeds} seed(s) × {first.n_examples} test "
           f"examples: mean [{first.confidence:.0%} CI]; ▲ above 0, ▼ "
           "below\n",
           "| Method | " + " | ".join(t.capitalize() for t in cols) + " |",
           "|---|" + "---:|" * len(cols)]
  for method, by_target in by_method.items():
    lines.append(f"| {method} | " + " | ".join(
        paired_bootstrap.effect_cell(_effect(by_target[t])) for t in cols)
                 + " |")
  return "\n".join(lines) + "\n"


# --- report -----------------------------------------------------------------

def _cell(s: Mapping[str, float]) -> str:
  if not s["n"]:
    return "–"
  return f"{s['mean']:.1f} ± {s['std']:.1f}"


def markdown_tables(summary: Mapping[str, Any], targets: Sequence[str],
                    metrics: Sequence[str], n_seeds: int) -> str:
  """Table 1 of the paper per metric, cells mean ± std across seeds."""
  cols = list(targets) + [AVG]
  header = ("| Method | " + " | ".join(t.capitalize() for t in cols) +
            " |\n|---|" + "---:|" * len(cols))
  parts = []
  for metric in metrics:
    rows = [f"| {m} | " + " | ".join(_cell(summary[m][t][metric])
                                     for t in cols) + " |"
            for m in summary]
    parts.append(f"### {METRIC_NAMES.get(metric, metric)}, test, mean ± "
                 f"std over {n_seeds} seeds\n\n{header}\n" + "\n".join(rows))
  return "\n\n".join(parts) + "\n"


def delta_table(per_seed: Mapping[str, Mapping[str, Any]],
                methods: Sequence[str], targets: Sequence[str],
                metric: str) -> str:
  """Each method minus the baseline: mean ± std [min, max] across seeds."""
  cols = list(targets) + [AVG]
  lines = [f"### Δ {METRIC_NAMES.get(metric, metric)} over the baseline: "
           "mean ± std [min, max] across seeds\n",
           "| Method | " + " | ".join(t.capitalize() for t in cols) + " |",
           "|---|" + "---:|" * len(cols)]
  for m in methods:
    if m == BASELINE:
      continue
    d = deltas(per_seed, m, targets, metric)
    cells = []
    for t in cols:
      s = stats(d[t])
      cells.append(f"{s['mean']:+.1f} ± {s['std']:.1f} "
                   f"[{s['min']:+.1f}, {s['max']:+.1f}]")
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def sanity_table(per_seed: Mapping[str, Mapping[str, Any]]) -> str:
  """Whether the parts were trained well enough to compose, per seed."""
  lines = ["| Seed | base loss (train / val) | task vector on its source: "
           "ROUGE-2, exact match | language vectors, val loss |",
           "|---|---|---|---|"]

  def loss(history, split):
    value = history.get(split, {}).get("loss")
    return "–" if value is None else f"{value:.3f}"

  for seed, record in per_seed.items():
    sanity = record["sanity"]
    training = sanity["training"]
    base = training.get("base", {})
    task = "; ".join(
        f"{lang}: {s['rouge2']:.1f}, {s.get('exact_match', float('nan')):.0f}%"
        for lang, s in sanity["task_vector_on_source"].items())
    langs = ", ".join(f"{name[len('lang_'):]} {loss(h, 'validation')}"
                      for name, h in training.items()
                      if name.startswith("lang_"))
    lines.append(f"| {seed} | {loss(base, 'train')} / "
                 f"{loss(base, 'validation')} | {task} | {langs} |")
  return "\n".join(lines) + "\n"


def plot_bars(summary: Mapping[str, Any], targets: Sequence[str],
              metrics: Sequence[str], path: str, n_seeds: int) -> str:
  """Per metric, bars per target and method: mean, error bar = std."""
  plt = reporting._pyplot()  # pylint: disable=protected-access
  methods = list(summary)
  cols = list(targets) + [AVG]
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8),
                           squeeze=False)
  width = 0.8 / len(methods)
  for ax, metric in zip(axes[0], metrics):
    for i, m in enumerate(methods):
      s = [summary[m][t][metric] for t in cols]
      xs = np.arange(len(cols)) + (i - (len(methods) - 1) / 2) * width
      ax.bar(xs, [x["mean"] for x in s], width, yerr=[x["std"] for x in s],
             capsize=2, label=m)
    ax.set_xticks(np.arange(len(cols)), [c.capitalize() for c in cols])
    ax.set_title(METRIC_NAMES.get(metric, metric), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
  axes[0][0].set_ylabel(f"test, mean ± std over {n_seeds} seeds")
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=min(len(methods), 3),
             fontsize="small")
  fig.tight_layout(rect=(0, 0.06 * math.ceil(len(methods) / 3), 1, 1))
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def plot_lambda(per_seed: Mapping[str, Mapping[str, Any]],
                targets: Sequence[str], path: str) -> str:
  """Validation score against λ, mean ± std over seeds, per target."""
  plt = reporting._pyplot()  # pylint: disable=protected-access
  first = next(iter(per_seed.values()))["lambda_sweeps"]
  metric = first["metric"]
  methods = [m for m, by in first["sweeps"].items()
             if len(next(iter(by.values()))) > 1]
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.4),
                           squeeze=False)
  for ax, target in zip(axes[0], targets):
    if BASELINE in first["sweeps"]:  # λ = 1: the task vector alone
      base = np.mean([r["lambda_sweeps"]["sweeps"][BASELINE][target]["1.0"]
                      for r in per_seed.values()])
      ax.axhline(base, color="k", linestyle="--", linewidth=1,
                 label=f"{BASELINE}, mean")
    for color, m in zip(colors, methods):
      lams = sorted(first["sweeps"][m][target], key=float)
      runs = np.asarray([[r["lambda_sweeps"]["sweeps"][m][target][lam]
                          for lam in lams] for r in per_seed.values()])
      mean, std = runs.mean(0), runs.std(0)
      xs = [float(x) for x in lams]
      ax.plot(xs, mean, marker="o", color=color, label=m)
      ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.2)
    ax.set_title(target.capitalize())
    ax.set_xlabel("λ")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel(f"validation {metric}, mean ± std over seeds")
  axes[0][0].legend(fontsize="x-small")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def write_report(out_dir: str, per_seed: Mapping[str, Mapping[str, Any]],
                 pcfg: pipeline.PipelineConfig, mcfg: MiniatureConfig,
                 seconds: float, command: str,
                 model_config: Optional[families.ModelConfig] = None,
                 effects: Optional[Mapping[str, Any]] = None,
                 figure2: Optional[Mapping[str, Any]] = None,
                 ablations: Optional[Mapping[str, Any]] = None,
                 qa: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
  """table.md, miniature.png, lambda_sweep.png and per_seed.json.

  `effects` (paired_effects) adds the paired intervals and the verdict
  worded from them; `figure2` (by_source_effects) the per-source grid and
  figure2.png; `ablations` (ablation_effects) a table per metric; `qa`
  (qa_results) the Table 4 section.
  """
  os.makedirs(out_dir, exist_ok=True)
  targets = list(pcfg.targets)
  methods = list(pcfg.methods)
  metrics = list(mcfg.metrics)
  n = len(per_seed)
  summary = aggregate(per_seed, methods, targets, metrics)
  verdicts = [verdict(per_seed, targets, k) for k in metrics]
  paths = {name: os.path.join(out_dir, name) for name in
           ("table.md", "miniature.png", "lambda_sweep.png", "per_seed.json")}
  base_seeds = ("one base pre-trained with seed "
                f"{mcfg.seeds[0]}" if mcfg.share_base else "a base per seed")
  text = [
      "## Miniature reproduction\n",
      f"Command: `{command}`\n",
      f"Seeds {', '.join(map(str, per_seed))} ({base_seeds}; world seed "
      f"{pcfg.world_seed}); source {pcfg.source}"
      + (f", task data also in {', '.join(pcfg.task_sources)}"
         if pcfg.task_sources else "")
      + f"; {pcfg.eval_examples} test examples per target; λ from "
      f"{', '.join(map(str, pcfg.lambdas))} chosen per target and seed on "
      f"validation {pcfg.selection_metric}. Runtime {seconds / 60:.1f} min.\n",
      *(_paired_sections(effects, targets, mcfg) if effects else []),
      "**Verdict**" + (" from the per-seed means (no interval)"
                       if effects else "") + "\n",
      "\n".join(f"* {v['sentence']}" for v in verdicts) + "\n",
      markdown_tables(summary, targets, metrics, n),
      "\n\n".join(delta_table(per_seed, methods, targets, k)
                  for k in metrics[:2]),
      *(_figure2_sections(figure2, pcfg) if figure2 else []),
      *(qa_sections(qa, targets, mcfg, pcfg) if qa else []),
      *([ablation_table(effects[k][METHOD], ablations[k], targets, k, pcfg)
         for k in ablations] if ablations and effects else []),
      "### Sanity: were the parts trained well enough?\n",
      sanity_table(per_seed)]
  with open(paths["table.md"], "w", encoding="utf-8") as f:
    f.write("\n".join(text))
  plot_bars(summary, targets, metrics, paths["miniature.png"], n)
  plot_lambda(per_seed, targets, paths["lambda_sweep.png"])
  if figure2:
    paths["figure2.png"] = effect_heatmap.plot(
        figure2[metrics[0]], pcfg.sources, targets,
        os.path.join(out_dir, "figure2.png"),
        f"Δ {METRIC_NAMES.get(metrics[0], metrics[0])}: add and subtract "
        f"minus the task vector, mean [{mcfg.confidence:.0%} CI]",
        "task vector trained in", "target")
  with open(paths["per_seed.json"], "w", encoding="utf-8") as f:
    json.dump({"command": command, "seconds": seconds,
               "seeds": [int(s) for s in per_seed],
               "miniature_config": dataclasses.asdict(mcfg),
               "pipeline_config": dataclasses.asdict(pcfg),
               "model_config": (dataclasses.asdict(model_config)
                                if model_config is not None else None),
               "targets": targets, "methods": methods, "metrics": metrics,
               "per_seed": per_seed, "summary": summary,
               "verdicts": verdicts, "paired": effects or {},
               "by_source": figure2 or {}, "ablations": ablations or {},
               "paired_verdicts": (paired_verdicts(effects) if effects
                                   else []),
               **({"qa": qa} if qa else {})},
              f, indent=2, sort_keys=False)
  return paths


def ablation_table(main: Mapping[str, Any], ablations: Mapping[str, Any],
                   targets: Sequence[str], metric: str,
                   pcfg: pipeline.PipelineConfig) -> str:
  """Add and subtract over the baseline, main setting against each
  ablation; the last column says whether the ablation flips the sign."""
  cols = list(targets) + [AVG]
  main_label = (f"main ({pcfg.space} space, language_steps "
                f"{pcfg.language_steps}, λ {'/'.join(map(str, pcfg.lambdas))})")
  lines = [f"### Ablations: Δ {METRIC_NAMES.get(metric, metric)} of "
           f"{METHOD} over the baseline, paired mean [CI]\n",
           "| Setting | " + " | ".join(t.capitalize() for t in cols)
           + " | sign of Avg vs main |", "|---|" + "---:|" * len(cols) + "---|"]
  rows = [(main_label, main)] + list(ablations.items())
  for label, by_target in rows:
    sign = ""
    if by_target is not main:
      a, m = by_target[AVG], main[AVG]
      product = a["mean"] * m["mean"]
      sign = ("flipped" if product < 0 else "same" if product > 0 or
              a["mean"] == m["mean"] else "zero on one side") + (
                  f"; interval {a['outcome']}"
                  if a["outcome"] != m["outcome"] else "")
    lines.append(f"| {label} | " + " | ".join(
        paired_bootstrap.effect_cell(_effect(by_target[t])) for t in cols)
                 + f" | {sign} |")
  return "\n".join(lines) + "\n"


def _figure2_sections(figure2: Mapping[str, Any],
                      pcfg: pipeline.PipelineConfig) -> list[str]:
  return [f"### Figure 2: Δ {METRIC_NAMES.get(k, k)} of add and subtract "
          "over the task vector of each source (paired, mean [CI]; ▲ above "
          "0, ▼ below)\n\n" + effect_heatmap.markdown(
              grid, pcfg.sources, pcfg.targets, "task vector in")
          for k, grid in figure2.items()]


def _paired_sections(effects: Mapping[str, Any], targets: Sequence[str],
                     mcfg: MiniatureConfig) -> list[str]:
  return [
      f"**Verdict from the paired {mcfg.confidence:.0%} interval** "
      f"(two-stage bootstrap, {mcfg.bootstrap_samples} replicates: seeds "
      "drawn with replacement, then test examples within each drawn seed "
      "and target; lta.eval.paired_bootstrap)\n",
      "\n".join(f"* {s}" for s in paired_verdicts(effects)) + "\n",
      "\n".join(paired_table(effects, targets, k) for k in effects)]


# --- Table 4: the QA-like task (lta.pipeline.qa) ----------------------------

def qa_results(workdir: str, seeds: Sequence[int],
               pcfg: pipeline.PipelineConfig,
               effects: Mapping[str, Any]) -> dict[str, Any]:
  """Every seed's QA scores (as collect_seed's, by method label), their
  aggregate, the paired `effects` (paired_results.qa_effects) and verdicts."""
  per_seed, on_source = {}, {}
  for seed in seeds:
    run = _read_json(os.path.join(workdir, f"seed_{seed}", "results",
                                  qa_stage.QA_FILE))
    per_seed[str(seed)] = {"scores": {
        method_registry.label(name): {t: cell["scores"][name]
                                      for t, cell in run["targets"].items()}
        for name in qa_stage.METHODS}, "lambdas": {
            t: cell["lambda"] for t, cell in run["targets"].items()}}
    on_source[str(seed)] = run["task_vector_on_source"]
  labels = [method_registry.label(name) for name in qa_stage.METHODS]
  return {"per_seed": per_seed, "task_vector_on_source": on_source,
          "summary": aggregate(per_seed, labels, pcfg.targets, QA_METRICS),
          "paired": effects, "paired_verdicts": [
              s for m in labels[1:] for s in paired_verdicts(effects, m)]}


def qa_sections(qa: Mapping[str, Any], targets: Sequence[str],
                mcfg: MiniatureConfig,
                pcfg: pipeline.PipelineConfig) -> list[str]:
  """Table 4 in miniature: verdicts, scores, paired Δ tables."""
  sanity = "; ".join(
      f"seed {seed}: F1 {scores[pcfg.source]['f1']:.1f}, exact match "
      f"{scores[pcfg.source]['em']:.1f}"
      for seed, scores in qa["task_vector_on_source"].items())
  return [
      "## Table 4 in miniature: the QA-like task\n",
      "One question per document (\"who <verb> <object>?\" or \"<subject> "
      "<verb> what?\"), answered by a span of it (lta.synthetic.qa), in "
      f"every language. A QA task vector trained on {pcfg.source} "
      f"({pcfg.task_steps} steps) is composed with the same language "
      "vectors as the summarization one; λ is chosen per target and seed on "
      "validation SQuAD F1. QA task vector on its own test set: "
      f"{sanity}.\n",
      f"**Verdict from the paired {mcfg.confidence:.0%} interval**\n",
      "\n".join(f"* {s}" for s in qa["paired_verdicts"]) + "\n",
      markdown_tables(qa["summary"], targets, QA_METRICS,
                      len(qa["per_seed"])),
      "\n".join(paired_table(qa["paired"], targets, k)
                for k in qa["paired"])]


def run_miniature(mcfg: MiniatureConfig, pcfg: pipeline.PipelineConfig,
                  model_config: families.ModelConfig, adapter: AdapterConfig,
                  command: str = "lta miniature") -> dict[str, str]:
  """Runs the pipeline for every seed, then writes the aggregate report."""
  t0 = time.time()
  os.makedirs(mcfg.workdir, exist_ok=True)
  if mcfg.compilation_cache:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(mcfg.workdir, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  per_seed = {}
  for i, seed in enumerate(mcfg.seeds):
    pipeline.banner(f"seed {seed} ({i + 1}/{len(mcfg.seeds)})")
    cfg = seed_config(mcfg, pcfg, seed)
    pipeline.run_pipeline(cfg, model_config, adapter)
    if mcfg.by_source:
      rescoring.score_by_source(cfg, model_config, adapter)
    if mcfg.ablations:
      rescoring.score_ablations(cfg, model_config, adapter, mcfg.ablations)
    if mcfg.qa:
      qa_stage.score_qa(cfg, model_config, adapter)
    per_seed[str(seed)] = collect_seed(cfg.workdir)
  bootstrap = (mcfg.workdir, mcfg.seeds, pcfg, mcfg.metrics)
  resampling = (mcfg.bootstrap_samples, mcfg.confidence)
  effects = paired_results.paired_effects(*bootstrap, BASELINE, *resampling)
  ablations = (paired_results.ablation_effects(*bootstrap, *resampling)
               if mcfg.ablations else None)
  figure2 = (paired_results.by_source_effects(*bootstrap, *resampling)
             if mcfg.by_source else None)
  qa = (qa_results(mcfg.workdir, mcfg.seeds, pcfg, paired_results.qa_effects(
      mcfg.workdir, mcfg.seeds, pcfg, QA_METRICS, *resampling))
        if mcfg.qa else None)
  seconds = time.time() - t0
  paths = write_report(os.path.join(mcfg.workdir, "results"), per_seed, pcfg,
                       mcfg, seconds, command, model_config, effects, figure2,
                       ablations, qa)
  with open(paths["table.md"], encoding="utf-8") as f:
    print(f.read())
  print(f"Wrote {', '.join(sorted(paths.values()))}")
  print(f"Miniature finished in {seconds / 60:.1f} min")
  return paths
