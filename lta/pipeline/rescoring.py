"""More comparisons on a finished pipeline run: Figure 2 and ablations.

Both run after `lta.pipeline.run.run_pipeline` on the same config, so the
base and the adapters they need are cached and loaded, not trained (an
ablation of the language vectors' steps trains its own, beside them).
Each comparison is scored as the pipeline scores: λ chosen on validation,
reported on test, with the decoded test examples kept for paired
statistics (lta.eval.paired_bootstrap).

  by_source.json   the paper's Figure 2: for each language with task data
                   and each target, the task vector of that language alone
                   (BASELINE) and add and subtract with it (METHOD):
                   {source: {target: cell}}.
  ablations.json   METHOD from the main source with one setting changed:
                   {ablation: {target: cell}}; its baseline is the main
                   run's BASELINE row, which no ablation changes.

A cell is {"lambda", "scores": {method: {metric: mean}},
"examples": {method: [{"target", "prediction"}]}}.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional, Sequence

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.eval import composed
from lta.eval.results import metric_label
from lta.models import families
from lta.pipeline import data as pipeline_data
from lta.pipeline import run as pipeline

BY_SOURCE_FILE = "by_source.json"
ABLATIONS_FILE = "ablations.json"
BASELINE = "task_only"
METHOD = "lang_task_add_subtract"
# What an ablation may change: PipelineConfig fields, parsed from text.
ABLATABLE = {"space": str, "language_steps": int,
             "lambdas": lambda v: tuple(float(x) for x in v.split("/"))}


@dataclasses.dataclass
class Parts:
  scorer: pipeline.Scorer
  task_vectors: dict
  language_vectors: dict
  base: pipeline.Base
  data: pipeline_data.Data


def load_parts(cfg: pipeline.PipelineConfig,
               model_config: families.ModelConfig, adapter: AdapterConfig,
               suffix: str = "",
               languages: Optional[Sequence[str]] = None) -> Parts:
  """The run's base, adapters and scorer: the language vectors of
  `languages` (default: all of the run's), named lang_<x><suffix> and
  trained if missing (the language-steps ablation)."""
  data = pipeline_data.prepare_data(cfg, model_config)
  base = pipeline.base_model(cfg, model_config, data)
  task_vectors, language_vectors = {}, {}
  for lang in cfg.sources:
    task_vectors[lang], _ = pipeline.train_adapter(
        cfg, f"task_{lang}", pipeline.task_name(model_config, lang),
        "task_steps", base, model_config, adapter, data)
  for lang in languages or cfg.languages:
    language_vectors[lang], _ = pipeline.train_adapter(
        cfg, f"lang_{lang}{suffix}", pipeline.task_name(model_config, lang,
                                                        True),
        "language_steps", base, model_config, adapter, data)
  return Parts(pipeline.Scorer(cfg, base.path, data), task_vectors,
               language_vectors, base, data)


def score_cell(cfg: pipeline.PipelineConfig, parts: Parts, source: str,
               target: str, names: Sequence[str]) -> dict[str, Any]:
  """`names` from `source` to `target`: λ on validation, test scores."""
  cell: dict[str, Any] = {"scores": {}, "examples": {}}
  for name in names:
    record, examples = composed.score_composition(
        parts.scorer, parts.scorer.task(target), name,
        task_vectors=parts.task_vectors,
        language_vectors=parts.language_vectors, sources=[source],
        grid=cfg.lambdas, space=cfg.space, split="test",
        selection_split="validation", selection_metric=cfg.selection_metric,
        allow_extrapolation=cfg.allow_extrapolation)
    cell["scores"][name] = dict(record.scores)
    cell["examples"][name] = [{"target": e["target"],
                               "prediction": e["prediction"]}
                              for e in examples]
    if name == METHOD:
      cell["lambda"] = record.lam
  metric = cfg.selection_metric
  pipeline.say(f"  {source} -> {target}: " + ", ".join(
      f"{n} {metric_label(metric)} {cell['scores'][n][metric]:.2f}"
      for n in names)
               + f" (λ={cell.get('lambda', 1.0):g})")
  return cell


def write_result(cfg: pipeline.PipelineConfig, name: str, value: Any) -> str:
  path = os.path.join(cfg.workdir, "results", name)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f, ensure_ascii=False)
  return path


def score_by_source(cfg: pipeline.PipelineConfig,
                    model_config: families.ModelConfig,
                    adapter: AdapterConfig) -> str:
  """Figure 2: BASELINE and METHOD from every source to every target."""
  pipeline.banner(f"Figure 2: {METHOD} against {BASELINE}, per source")
  parts = load_parts(cfg, model_config, adapter)
  return write_result(cfg, BY_SOURCE_FILE, {
      s: {t: score_cell(cfg, parts, s, t, (BASELINE, METHOD))
          for t in cfg.targets} for s in cfg.sources})


def parse_ablation(text: str) -> tuple[str, Any]:
  """'space=delta', 'language_steps=1000', 'lambdas=0.3/0.5' -> (field, value)."""
  field, sep, value = text.partition("=")
  if not sep or field not in ABLATABLE:
    raise errors.ConfigError(
        f"ablation {text!r}: expected <field>=<value> with a field of "
        f"{sorted(ABLATABLE)}" + errors.did_you_mean(field, ABLATABLE))
  try:
    return field, ABLATABLE[field](value)
  except ValueError as e:
    raise errors.ConfigError(f"ablation {text!r}: bad value ({e})") from None


def score_ablations(cfg: pipeline.PipelineConfig,
                    model_config: families.ModelConfig,
                    adapter: AdapterConfig,
                    ablations: Sequence[str]) -> str:
  """METHOD from the main source under each ablation, to every target."""
  out: dict[str, Mapping[str, Any]] = {}
  for text in ablations:
    field, value = parse_ablation(text)
    pipeline.banner(f"ablation {text}: {METHOD}")
    variant = dataclasses.replace(cfg, **{field: value})
    suffix = f"_steps{value}" if field == "language_steps" else ""
    parts = load_parts(variant, model_config, adapter, suffix,
                       (cfg.source,) + tuple(cfg.targets))
    out[text] = {t: score_cell(variant, parts, cfg.source, t, (METHOD,))
                 for t in cfg.targets}
  return write_result(cfg, ABLATIONS_FILE, out)
