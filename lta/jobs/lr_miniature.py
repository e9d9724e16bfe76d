"""The learning-rate miniature: does a well-chosen rate cut wrong-language output?

The companion study (Chirkova and Nikoulina, 2024) finds that the learning
rate of fine-tuning matters more for zero-shot cross-lingual generation than
the choice among adaptation methods: too high a rate makes the model answer
in the source language. This job asks the same question on the synthetic
world (docs/lr_miniature.md). Per seed it fine-tunes one shared pre-trained
base on the source's summaries, fully and with LoRA, at every rate of a
grid; it decodes the source's and the targets' validation and test sets, and
measures the task score and the wrong-language rate
(`lta.eval.langid.wrong_language_rate`, the world's lexicon identifier).
The rate of each method is chosen on validation and compared, seed by seed,
with the method's untuned reference rate; the verdict says what the
numbers say.

  lta lr-miniature --gin_file=experiments/lr_miniature.gin
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Mapping, Optional, Sequence

import gin
import jax
import numpy as np

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.eval import langid
from lta.eval.across_seeds import stats
from lta.models import families
from lta.pipeline import data as pipeline_data
from lta.pipeline import run as pipeline
from lta.pipeline import stages

METHODS = {"full": "Full fine-tuning", "lora": "LoRA"}
SPLITS = ("validation", "test")
METRIC_NAMES = {"wrong_language": "wrong language (%)",
                "rouge2": "ROUGE-2 (spm)", "exact_match": "exact match (%)",
                "language_fidelity": "target-language fidelity (%)"}
TARGETS = "targets"  # the targets' mean, a column of its own


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LearningRateStudyConfig:
  """The rates, seeds and references; PipelineConfig holds everything else
  (world, base pre-training, task_steps, eval_examples, selection_metric)."""
  workdir: str = "lta_runs/lr_miniature"
  seeds: tuple[int, ...] = (0, 1, 2)
  full_learning_rates: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
  lora_learning_rates: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
  # The rate one would use untuned (lta's miniature.gin uses 3e-3 for
  # pre-training and 1e-2 for LoRA): the chosen rate is compared with it.
  full_reference_rate: float = 1e-3
  lora_reference_rate: float = 1e-2
  # Batch size of the fine-tuning runs (None: PipelineConfig.batch_size,
  # which the base is pre-trained with).
  batch_size: Optional[int] = None
  # Report the runs already scored and train nothing (a partial table while
  # a run is under way, or after it was stopped).
  report_only: bool = False
  # Where the rate is chosen: "targets" (their validation sets, as a study
  # tuning for transfer does) or "source" (strictly zero-shot).
  select_on: str = "targets"
  compilation_cache: bool = True

  def __post_init__(self):
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise errors.ConfigError(f"LearningRateStudyConfig.seeds must be "
                               f"distinct and non-empty, got {self.seeds}")
    for method in METHODS:
      rates, ref = self.rates(method), self.reference(method)
      if not rates or len(set(rates)) != len(rates) or min(rates) <= 0:
        raise errors.ConfigError(
            f"LearningRateStudyConfig.{method}_learning_rates must be "
            f"distinct positive rates, got {rates}")
      if ref not in rates:
        raise errors.ConfigError(
            f"LearningRateStudyConfig.{method}_reference_rate={ref:g} is not "
            f"among {method}_learning_rates {rates}")
    if self.select_on not in ("targets", "source"):
      raise errors.ConfigError(
          f"LearningRateStudyConfig.select_on={self.select_on!r}; expected "
          f"'targets' or 'source'{errors.did_you_mean(self.select_on, ('targets', 'source'))}")

  def rates(self, method: str) -> tuple[float, ...]:
    return getattr(self, f"{method}_learning_rates")

  def reference(self, method: str) -> float:
    return getattr(self, f"{method}_reference_rate")


def run_name(method: str, rate: float) -> str:
  return f"{method}_lr{rate:g}"


def seed_config(study: LearningRateStudyConfig, pcfg: pipeline.PipelineConfig,
                seed: int) -> pipeline.PipelineConfig:
  """One seed's runs share the study's data and base."""
  return dataclasses.replace(
      pcfg, workdir=os.path.join(study.workdir, f"seed_{seed}"), seed=seed,
      data_dir=os.path.join(study.workdir, "data"),
      base_dir=os.path.join(study.workdir, "base"), task_sources=())


def run_config(study: LearningRateStudyConfig,
               cfg: pipeline.PipelineConfig) -> pipeline.PipelineConfig:
  """A seed's fine-tuning runs: its config with the study's batch size."""
  return dataclasses.replace(cfg, batch_size=study.batch_size or cfg.batch_size)


# --- one run ----------------------------------------------------------------

def score_run(scorer: pipeline.Scorer, adapter, cfg: pipeline.PipelineConfig,
              identifier: Optional[langid.LanguageIdentifier]
              ) -> dict[str, Any]:
  """lang -> split -> metric, for the source and every target; TARGETS ->
  the targets."""
  out: dict[str, Any] = {TARGETS: list(cfg.targets)}
  for lang in (cfg.source,) + tuple(cfg.targets):
    for split in SPLITS:
      result = scorer.score(adapter, scorer.task(lang), split)
      predictions = [e["prediction"] for e in result.examples]
      scores = {k: float(v) for k, v in result.scores.items()
                if isinstance(v, (int, float))}
      scores["wrong_language"] = langid.wrong_language_rate(
          predictions, lang, identifier)
      out.setdefault(lang, {})[split] = scores
  return out


def train_and_score(cfg: pipeline.PipelineConfig, method: str, rate: float,
                    base: pipeline.Base, model_config: families.ModelConfig,
                    adapter_config: AdapterConfig, data: pipeline_data.Data,
                    base_scorer: pipeline.Scorer,
                    identifier: Optional[langid.LanguageIdentifier]
                    ) -> dict[str, Any]:
  """Trains one (method, rate) on the source task (cached by stage records)
  and scores it, or reads its scores when nothing they depend on changed."""
  name = run_name(method, rate)
  task = pipeline.task_name(model_config, cfg.source)
  if method == "full":
    model = pipeline.fine_tune_model(cfg, name, task, cfg.task_steps, rate,
                                     base, model_config, data)
    digest, adapter = model.digest, None
  else:
    adapter, digest = pipeline.train_adapter(
        dataclasses.replace(cfg, adapter_learning_rate=rate), name, task,
        "task_steps", base, model_config, adapter_config, data)
  out_dir = os.path.join(cfg.workdir, name, "scores")
  stage = stages.Stage.in_dir(f"{name} scores", out_dir, {
      "model": digest, "eval_examples": cfg.eval_examples,
      "languages": cfg.languages, "target_length": cfg.target_length})
  path = os.path.join(out_dir, "scores.json")
  if stages.check(stage, redo_stale=True) == stages.CACHED:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  stages.start(stage)
  scorer = (base_scorer if adapter is not None
            else pipeline.Scorer(cfg, model.path, data))
  scores = score_run(scorer, adapter, cfg, identifier)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(scores, f, indent=2)
  stages.finish(stage)
  return scores


# --- aggregation ------------------------------------------------------------

def value(scores: Mapping[str, Any], lang: str, split: str,
          metric: str) -> float:
  """One number of a run; lang TARGETS is the mean over the targets."""
  if lang == TARGETS:
    return float(np.mean([scores[t][split][metric]
                          for t in scores[TARGETS]]))
  return float(scores[lang][split][metric])


def across_seeds(per_seed: Mapping[str, Mapping[str, Any]], method: str,
                 rate: float, lang: str, split: str, metric: str
                 ) -> list[float]:
  name = run_name(method, rate)
  return [value(runs[name], lang, split, metric)
          for runs in per_seed.values() if name in runs]


def choose_rate(study: LearningRateStudyConfig,
                per_seed: Mapping[str, Mapping[str, Any]], method: str,
                metric: str, source: str) -> float:
  """The rate with the best mean validation `metric` across seeds, on the
  targets or on the source (`select_on`); ties go to the smaller rate."""
  lang = TARGETS if study.select_on == "targets" else source
  means = {rate: stats(across_seeds(per_seed, method, rate, lang,
                                    "validation", metric))["mean"]
           for rate in sorted(study.rates(method))}
  return max(means, key=lambda rate: (
      -np.inf if np.isnan(means[rate]) else means[rate], -rate))


def verdict(study: LearningRateStudyConfig,
            per_seed: Mapping[str, Mapping[str, Any]], method: str,
            metric: str, source: str) -> dict[str, Any]:
  """The chosen rate against the reference: wrong-language rate and task
  score on the targets' test sets, per-seed differences counted."""
  chosen, reference = (choose_rate(study, per_seed, method, metric, source),
                       study.reference(method))
  # Paired by seed: only seeds that have both runs count.
  both = [runs for runs in per_seed.values()
          if run_name(method, chosen) in runs and
          run_name(method, reference) in runs]
  def delta(name):
    return [value(runs[run_name(method, chosen)], TARGETS, "test", name) -
            value(runs[run_name(method, reference)], TARGETS, "test", name)
            for runs in both]
  wrong, score = delta("wrong_language"), delta(metric)
  d_wrong, d_score = stats(wrong), stats(score)
  lower = sum(x < 0 for x in wrong)
  label = METHODS[method]
  if not both:
    outcome = "not_measured"
    sentence = (f"{label}: no seed has both the chosen rate's ({chosen:g}) "
                f"and the reference's ({reference:g}) run yet.")
  elif chosen == reference:
    outcome = "reference_chosen"
    sentence = (f"{label}: the rate chosen on {study.select_on} validation "
                f"{metric} is the reference rate {reference:g}; tuning changes "
                "nothing here.")
  else:
    outcome = ("cuts" if d_wrong["mean"] < 0 and lower == len(wrong) else
               "cuts_on_average" if d_wrong["mean"] < 0 else "does_not_cut")
    words = {"cuts": "cuts the wrong-language rate in every seed",
             "cuts_on_average":
                 "cuts the wrong-language rate on average, not in every seed",
             "does_not_cut": "does not cut the wrong-language rate"}[outcome]
    sentence = (
        f"{label}: the rate chosen on {study.select_on} validation {metric}, "
        f"{chosen:g}, {words} against the reference {reference:g}: "
        f"Δ = {d_wrong['mean']:+.1f} ± {d_wrong['std']:.1f} points "
        f"(lower in {lower} of {len(wrong)} seeds), with test {metric} "
        f"Δ = {d_score['mean']:+.1f} ± {d_score['std']:.1f} on the targets.")
  return {"method": method, "chosen_rate": chosen,
          "reference_rate": reference, "outcome": outcome,
          "delta_wrong_language": d_wrong, "delta_score": d_score,
          "seeds_lower": lower, "n_seeds": len(wrong), "sentence": sentence}


# --- report -----------------------------------------------------------------

def _cell(values: Sequence[float]) -> str:
  s = stats(values)
  return "–" if not s["n"] else f"{s['mean']:.1f} ± {s['std']:.1f}"


def rate_table(study: LearningRateStudyConfig,
               per_seed: Mapping[str, Mapping[str, Any]],
               pcfg: pipeline.PipelineConfig, chosen: Mapping[str, float]
               ) -> str:
  """One row per method and rate: test scores, mean ± std over seeds."""
  metric = pcfg.selection_metric
  columns = [(TARGETS, "test", "wrong_language"), (TARGETS, "test", metric),
             (TARGETS, "test", "exact_match"),
             (TARGETS, "test", "language_fidelity"),
             (pcfg.source, "test", metric),
             (pcfg.source, "test", "exact_match"),
             (TARGETS if study.select_on == "targets" else pcfg.source,
              "validation", metric)]
  def title(lang, split, name):
    where = "targets" if lang == TARGETS else lang
    return f"{METRIC_NAMES.get(name, name)}, {where} {split}"
  lines = ["| Method | Rate | " + " | ".join(title(*c) for c in columns) + " |",
           "|---|---:|" + "---:|" * len(columns)]
  for method, label in METHODS.items():
    for rate in study.rates(method):
      marks = []
      if rate == chosen[method]:
        marks.append("chosen")
      if rate == study.reference(method):
        marks.append("reference")
      note = f" ({', '.join(marks)})" if marks else ""
      cells = [_cell(across_seeds(per_seed, method, rate, *c))
               for c in columns]
      lines.append(f"| {label} | {rate:g}{note} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def per_target_table(study: LearningRateStudyConfig,
                     per_seed: Mapping[str, Mapping[str, Any]],
                     targets: Sequence[str], metric: str) -> str:
  """`metric` on each target's test set, per method and rate."""
  lines = ["| Method | Rate | " + " | ".join(t.capitalize() for t in targets)
           + " |", "|---|---:|" + "---:|" * len(targets)]
  for method, label in METHODS.items():
    for rate in study.rates(method):
      lines.append(f"| {label} | {rate:g} | " + " | ".join(
          _cell(across_seeds(per_seed, method, rate, t, "test", metric))
          for t in targets) + " |")
  return "\n".join(lines) + "\n"


def plot(study: LearningRateStudyConfig,
         per_seed: Mapping[str, Mapping[str, Any]], metric: str,
         path: str) -> str:
  """Wrong-language rate and task score on the targets against the rate."""
  from lta.eval import report as reporting  # pylint: disable=g-import-not-at-top
  plt = reporting._pyplot()  # pylint: disable=protected-access
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
  for ax, name in zip(axes, ("wrong_language", metric)):
    for method, label in METHODS.items():
      rates = sorted(study.rates(method))
      s = [stats(across_seeds(per_seed, method, r, TARGETS, "test", name))
           for r in rates]
      ax.errorbar(rates, [x["mean"] for x in s], yerr=[x["std"] for x in s],
                  marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_title(f"{METRIC_NAMES.get(name, name)}, targets' test", fontsize=9)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(f"mean ± std over {len(per_seed)} seeds")
  axes[0].legend(fontsize="small")
  fig.tight_layout()
  return reporting.save_figure(fig, path)


def write_report(out_dir: str, study: LearningRateStudyConfig,
                 pcfg: pipeline.PipelineConfig,
                 per_seed: Mapping[str, Mapping[str, Any]], seconds: float,
                 command: str) -> dict[str, str]:
  """table.md, lr_sweep.png and per_seed.json under `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  metric = pcfg.selection_metric
  verdicts = {m: verdict(study, per_seed, m, metric, pcfg.source)
              for m in METHODS}
  chosen = {m: v["chosen_rate"] for m, v in verdicts.items()}
  paths = {name: os.path.join(out_dir, name)
           for name in ("table.md", "lr_sweep.png", "per_seed.json")}
  text = [
      "## Learning-rate miniature\n",
      f"Command: `{command}`\n",
      f"Seeds {', '.join(per_seed)} (one base pre-trained with seed "
      f"{study.seeds[0]}; world seed {pcfg.world_seed}); fine-tuned on "
      f"{pcfg.source} for {pcfg.task_steps} steps (AdamW, constant rate, "
      f"batch {study.batch_size or pcfg.batch_size}); {pcfg.eval_examples} examples per language "
      f"and split; targets {', '.join(pcfg.targets)}; rate chosen per method "
      f"on {study.select_on} validation {metric} (mean over seeds). Runtime "
      f"{seconds / 60:.1f} min.\n",
      "**Verdict**\n",
      "\n".join(f"* {v['sentence']}" for v in verdicts.values()) + "\n",
      f"### Test scores, mean ± std over {len(per_seed)} seeds\n",
      rate_table(study, per_seed, pcfg, chosen),
      "### Wrong language (%) per target, test\n",
      per_target_table(study, per_seed, pcfg.targets, "wrong_language")]
  with open(paths["table.md"], "w", encoding="utf-8") as f:
    f.write("\n".join(text))
  plot(study, per_seed, metric, paths["lr_sweep.png"])
  with open(paths["per_seed.json"], "w", encoding="utf-8") as f:
    json.dump({"command": command, "seconds": seconds,
               "study_config": dataclasses.asdict(study),
               "pipeline_config": dataclasses.asdict(pcfg),
               "per_seed": per_seed, "verdicts": verdicts}, f, indent=2)
  return paths


def scored_runs(study: LearningRateStudyConfig,
                pcfg: pipeline.PipelineConfig) -> dict[str, dict[str, Any]]:
  """seed -> run -> scores, of the runs whose scoring finished."""
  per_seed: dict[str, dict[str, Any]] = {}
  for seed in study.seeds:
    cfg = seed_config(study, pcfg, seed)
    for method in METHODS:
      for rate in study.rates(method):
        name = run_name(method, rate)
        record = stages.read_record(stages.Stage.in_dir(
            name, os.path.join(cfg.workdir, name, "scores"), {}))
        if record and record.get("finished"):
          with open(os.path.join(cfg.workdir, name, "scores", "scores.json"),
                    encoding="utf-8") as f:
            per_seed.setdefault(str(seed), {})[name] = json.load(f)
  return per_seed


def run_study(study: LearningRateStudyConfig, pcfg: pipeline.PipelineConfig,
              model_config: families.ModelConfig, adapter: AdapterConfig,
              command: str = "lta lr-miniature") -> dict[str, str]:
  """Every (seed, method, rate): trained, scored; then the report."""
  t0 = time.time()
  if study.report_only:
    return write_report(os.path.join(study.workdir, "results"), study, pcfg,
                        scored_runs(study, pcfg), time.time() - t0,
                        command + " (report only: the runs scored so far)")
  os.makedirs(study.workdir, exist_ok=True)
  if study.compilation_cache:
    pipeline.use_compilation_cache(os.path.join(study.workdir, "jax_cache"))
  first = seed_config(study, pcfg, study.seeds[0])
  pipeline.stage_banner(1)
  data = pipeline_data.prepare_data(first, model_config)
  pipeline.stage_banner(2)
  base = pipeline.base_model(first, model_config, data)
  base_scorer = pipeline.Scorer(first, base.path, data)
  identifier = None  # real data: fastText
  if data.world is not None:
    from lta.synthetic import lexicon_lid  # pylint: disable=g-import-not-at-top
    identifier = lexicon_lid.LexiconIndex(data.world)
  per_seed: dict[str, dict[str, Any]] = {}
  for seed in study.seeds:
    cfg = run_config(study, seed_config(study, pcfg, seed))
    runs = per_seed.setdefault(str(seed), {})
    for method in METHODS:
      for rate in study.rates(method):
        pipeline.banner(f"seed {seed}: {METHODS[method]}, rate {rate:g}")
        runs[run_name(method, rate)] = train_and_score(
            cfg, method, rate, base, model_config, adapter, data,
            base_scorer, identifier)
  seconds = time.time() - t0
  paths = write_report(os.path.join(study.workdir, "results"), study, pcfg,
                       per_seed, seconds, command)
  with open(paths["table.md"], encoding="utf-8") as f:
    print(f.read())
  print(f"Wrote {', '.join(sorted(paths.values()))}")
  print(f"Learning-rate miniature finished in {seconds / 60:.1f} min")
  return paths
