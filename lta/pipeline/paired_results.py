"""Paired effects of runs over several seeds, from the files each run wrote.

Every seed of a miniature (lta.jobs.miniature) scores every method on the
same test examples. These functions re-read each example's score
(lta.eval.paired_scores, checked against the run's own means), pair each
method with its baseline example by example, and return the effects of
lta.eval.paired_bootstrap as dicts (mean, interval, pair counts, outcome).
The run directories are <workdir>/seed_<s>; the data (vocabulary and the
synthetic world, whose lexicon identifies languages) is <workdir>/data.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from lta.eval import methods as method_registry
from lta.eval import paired_bootstrap
from lta.eval import paired_scores
from lta.pipeline import qa
from lta.pipeline import rescoring
from lta.pipeline import run as pipeline

AVG = "avg"
Effects = dict[str, dict[str, dict[str, Any]]]


def _read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _results(workdir: str, seed: int, name: str) -> str:
  return os.path.join(workdir, f"seed_{seed}", "results", name)


def scoring_tools(workdir: str, pcfg: pipeline.PipelineConfig):
  """The run's SentencePiece model (ROUGE) and language identifier."""
  # pylint: disable=g-import-not-at-top  (synthetic worlds only)
  from lta.synthetic import lexicon_lid
  data_dir = os.path.join(workdir, "data")
  spm_path = pcfg.vocab_path or os.path.join(data_dir, "spm", "spm.model")
  return spm_path, lexicon_lid.LexiconIndex(os.path.join(data_dir, "world"))


def _effect(method_rows, baseline_rows, num_samples, confidence):
  d = paired_bootstrap.stack_differences(method_rows, baseline_rows)
  return paired_bootstrap.paired_effect(d, num_samples,
                                        confidence).to_dict()


def _by_target(method_rows, baseline_rows, targets, num_samples,
               confidence) -> dict[str, Any]:
  """target (and AVG) -> effect; rows are [seeds][targets][examples]."""
  m, b = np.asarray(method_rows), np.asarray(baseline_rows)
  out = {t: _effect(m[:, i:i + 1], b[:, i:i + 1], num_samples, confidence)
         for i, t in enumerate(targets)}
  out[AVG] = _effect(m, b, num_samples, confidence)
  return out


def _main_scores(workdir: str, seeds: Sequence[int],
                 pcfg: pipeline.PipelineConfig, methods: Sequence[str],
                 metric: str, tools) -> list[dict[str, np.ndarray]]:
  """Per seed, method label -> [targets, examples] of the main run."""
  return [paired_scores.paired_scores(
      _results(workdir, seed, paired_scores.PREDICTIONS_FILE),
      _read_json(_results(workdir, seed, "scores.json")), methods,
      list(pcfg.targets), metric, *tools) for seed in seeds]


def paired_effects(workdir: str, seeds: Sequence[int],
                   pcfg: pipeline.PipelineConfig, metrics: Sequence[str],
                   baseline: str,
                   num_samples: int = paired_bootstrap.NUM_SAMPLES,
                   confidence: float = paired_bootstrap.CONFIDENCE
                   ) -> Effects:
  """metric -> method label (all but `baseline`) -> target (and AVG) ->
  the effect of the method over `baseline`."""
  tools = scoring_tools(workdir, pcfg)
  methods = list(pcfg.methods)
  out: Effects = {}
  for metric in metrics:
    by_seed = _main_scores(workdir, seeds, pcfg, methods, metric, tools)
    out[metric] = {
        m: _by_target([s[m] for s in by_seed], [s[baseline] for s in by_seed],
                      pcfg.targets, num_samples, confidence)
        for m in methods if m != baseline}
  return out


def _cell_scores(cell, name, target, metric, tools, where) -> np.ndarray:
  return paired_scores.checked_per_example(
      cell["examples"][name], target, metric, *tools,
      cell["scores"][name][metric], where)


def by_source_effects(workdir: str, seeds: Sequence[int],
                      pcfg: pipeline.PipelineConfig, metrics: Sequence[str],
                      num_samples: int = paired_bootstrap.NUM_SAMPLES,
                      confidence: float = paired_bootstrap.CONFIDENCE
                      ) -> Effects:
  """Figure 2: metric -> source -> target -> the effect of add and
  subtract over the task vector of that source (rescoring.BY_SOURCE_FILE)."""
  tools = scoring_tools(workdir, pcfg)
  files = {s: _results(workdir, s, rescoring.BY_SOURCE_FILE) for s in seeds}
  runs = {s: _read_json(path) for s, path in files.items()}
  out: Effects = {}
  for metric in metrics:
    out[metric] = {}
    for source in pcfg.sources:
      out[metric][source] = {}
      for target in pcfg.targets:
        rows = {name: [[_cell_scores(run[source][target], name, target,
                                     metric, tools,
                                     f"{files[s]}: {name} from {source}")]
                       for s, run in runs.items()]
                for name in (rescoring.BASELINE, rescoring.METHOD)}
        out[metric][source][target] = _effect(
            rows[rescoring.METHOD], rows[rescoring.BASELINE], num_samples,
            confidence)
  return out


def ablation_effects(workdir: str, seeds: Sequence[int],
                     pcfg: pipeline.PipelineConfig, metrics: Sequence[str],
                     num_samples: int = paired_bootstrap.NUM_SAMPLES,
                     confidence: float = paired_bootstrap.CONFIDENCE
                     ) -> Effects:
  """metric -> ablation -> target (and AVG) -> the effect of add and
  subtract under the ablation over the main run's task vector alone."""
  tools = scoring_tools(workdir, pcfg)
  baseline = method_registry.label(rescoring.BASELINE)
  files = {s: _results(workdir, s, rescoring.ABLATIONS_FILE) for s in seeds}
  runs = {s: _read_json(path) for s, path in files.items()}
  out: Effects = {}
  for metric in metrics:
    main = _main_scores(workdir, seeds, pcfg, [baseline], metric, tools)
    out[metric] = {}
    for ablation in next(iter(runs.values())):
      method_rows = [[_cell_scores(run[ablation][t], rescoring.METHOD, t,
                                   metric, tools, f"{files[s]}: {ablation}")
                      for t in pcfg.targets] for s, run in runs.items()]
      out[metric][ablation] = _by_target(
          method_rows, [m[baseline] for m in main], pcfg.targets,
          num_samples, confidence)
  return out


def qa_effects(workdir: str, seeds: Sequence[int],
               pcfg: pipeline.PipelineConfig, metrics: Sequence[str],
               num_samples: int = paired_bootstrap.NUM_SAMPLES,
               confidence: float = paired_bootstrap.CONFIDENCE) -> Effects:
  """Table 4: metric -> method label -> target (and AVG) -> the effect of
  the method over the QA task vector alone (qa.QA_FILE of every seed)."""
  tools = scoring_tools(workdir, pcfg)
  files = {s: _results(workdir, s, qa.QA_FILE) for s in seeds}
  runs = {s: _read_json(path)["targets"] for s, path in files.items()}
  baseline, *others = qa.METHODS
  out: Effects = {}
  for metric in metrics:
    rows = {name: [[_cell_scores(run[t], name, t, metric, tools,
                                 f"{files[s]}: {name}")
                    for t in pcfg.targets] for s, run in runs.items()]
            for name in qa.METHODS}
    out[metric] = {method_registry.label(name): _by_target(
        rows[name], rows[baseline], pcfg.targets, num_samples, confidence)
                   for name in others}
  return out
