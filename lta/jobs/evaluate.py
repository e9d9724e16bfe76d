"""`lta eval`: decode and score tasks for one adapter or one composition.

One base checkpoint (HF directory or T5X checkpoint), then either
  * nothing else: the base model itself;
  * `adapter_dir`: one exported adapter (trained or merged);
  * `composition` with task/language vector directories: composed per
    target language at each λ of `lambdas`. With several λ the best one per
    target is chosen on `selection_split` and reported on `split`, as the
    paper does; a single-source composition is compared with the task
    vector of that source alone (the paper's baseline), with a plot of the
    λ sweep and the paper's Figure 2 heatmap of the relative improvement.
Rows are named as in the paper (`lta.eval.methods`); the results are written as
`lta.eval.results` records, which `lta report` collects into the paper's tables.
Every adapter is checked against the base model's fingerprint, merged into
the base weights, and decoded at the base model's cost.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Union

import gin
import seqio

from lta import errors
from lta import partitioning
from lta.adapters import adapter_io
from lta.adapters.manifest import Adapter
from lta.arithmetic import compositions as arithmetic
from lta.data import input_pipeline
from lta.data import task_names
from lta.eval import composed
from lta.eval import lambda_selection
from lta.eval import methods
from lta.eval import report as reporting
from lta.eval import scoring as evaluation
from lta.languages import related
from lta.models.contract import DecodingConfig
from lta.models import families
from lta.eval.results import ResultRecord


@gin.configurable
def run_eval(*, output_dir: str = gin.REQUIRED,
             base_checkpoint: str = gin.REQUIRED,
             tasks: Sequence[str] = gin.REQUIRED,
             task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
             split: str = "test", selection_split: str = "validation",
             batch_size: int = 8, adapters_per_call: int = 4,
             decoding: Optional[DecodingConfig] = None,
             max_examples: Optional[int] = None,
             adapter_dir: Optional[str] = None,
             composition: Optional[str] = None,
             task_vectors: Optional[Mapping[str, str]] = None,
             language_vectors: Optional[Mapping[str, str]] = None,
             sources: Optional[Sequence[str]] = None,
             lambdas: Union[float, Sequence[float]] = 1.0,
             space: str = "factor", selection: str = "paper",
             baseline: str = "include",
             tfds_data_dir: Optional[str] = None,
             mixture_or_task_module: str = "lta_tasks",
             allow_extrapolation: bool = False,
             allow_unlabelled: bool = False,
             model_config: Optional[families.ModelConfig] = None
             ) -> dict[str, str]:
  """Writes results.json, predictions.jsonl, scores.csv/json, table.md (and
  plots); prints the table and every path written. As N processes (LTA_*
  environment, lta.partitioning) each decodes 1/N of every task and
  process 0 writes; the others return {}.

  A composition's λ decode side by side, `adapters_per_call` a call
  (composed.MergedScorer.score_all). λ must lie in [0, 1] unless
  allow_extrapolation; allow_unlabelled accepts vectors whose manifests
  name no task or language. `model_config` (@T5Config() or
  @DecoderConfig() and a gin/models file) is the architecture of a T5X
  base_checkpoint; an HF one brings its own. `baseline` says whether a
  composition is scored next to its task-vector baseline ("include"), alone
  ("exclude"), or the baseline alone ("only"): `lta sweep` scores the
  baseline once for all its λ jobs.
  """
  partitioning.initialize_distributed()  # before any device is touched
  input_pipeline.import_task_modules(mixture_or_task_module,
                                     "run_eval.mixture_or_task_module")
  if tfds_data_dir:
    seqio.set_tfds_data_dir_override(tfds_data_dir)
  if adapter_dir and composition:
    raise errors.ConfigError(
        "run_eval: give adapter_dir or composition, not both.")
  _check_baseline(baseline, composition)
  lambdas = lambda_selection.check_lambdas(
      lambdas, allow_extrapolation=allow_extrapolation,
      name="run_eval.lambdas", switch="run_eval.allow_extrapolation=True")
  _one_task_per_language(tasks)
  if composition is not None:
    task_vecs = adapter_io.AdapterDirs(task_vectors or {}, "task")
    lang_vecs = adapter_io.AdapterDirs(language_vectors or {}, "language")
    sources_of = _sources_by_target(composition, tasks, task_vecs, sources,
                                    selection)
    for task in tasks:  # refuse a composition before decoding anything
      arithmetic.plan(composition, task_vectors=task_vecs,
                      language_vectors=lang_vecs,
                      target=task_names.language(task),
                      sources=sources_of[task], lam=lambdas[0],
                      allow_extrapolation=allow_extrapolation,
                      allow_unlabelled=allow_unlabelled)
  for task in tasks:  # registered, with the data of the splits read here
    for s in dict.fromkeys([split] + ([selection_split] if composition
                                      else [])):
      input_pipeline.check_task(task, s)
  scorer = composed.MergedScorer(
      base_checkpoint, task_feature_lengths, batch_size,
      decoding or DecodingConfig(
          max_decode_length=task_feature_lengths["targets"]),
      max_examples, model_config=model_config,
      adapters_per_call=adapters_per_call)
  scored: list[tuple[ResultRecord, list]] = []
  plots: dict[str, str] = {}
  if composition is None:
    adapter, method, fields = None, "base", {}
    if adapter_dir:
      tree, manifest = adapter_io.load_adapter(adapter_dir)
      adapter = Adapter(tree, manifest, name=adapter_dir)
      method, fields = adapter_method(manifest)
      fields["adapter"] = adapter_dir
    for task in tasks:
      result = scorer.score(adapter, task, split)
      scored.append((ResultRecord.from_scored(
          method, result, **fields, split=split,
          base_checkpoint=base_checkpoint), result.examples))
  else:
    for task in tasks:
      for name in compared_methods(composition, sources, baseline):
        scored.append(composed.score_composition(
            scorer, task, name, task_vectors=task_vecs,
            language_vectors=lang_vecs, sources=sources_of[task],
            grid=lambdas, space=space, split=split,
            selection_split=selection_split,
            allow_extrapolation=allow_extrapolation,
            allow_unlabelled=allow_unlabelled))
    if partitioning.is_writer():
      plots = _plots([r for r, _ in scored], composition, output_dir)
  records = [r for r, _ in scored]
  counts = sorted({r.num_examples for r in records})
  count = (str(counts[0]) if len(counts) == 1 else
           f"{counts[0]}-{counts[-1]}")
  caption = (f"{split} split, {count} examples per task"
             f"{'' if max_examples is None else f' (at most {max_examples})'}"
             f"; base {scorer.config.name} ({base_checkpoint}).")
  if any(r.lam is not None for r in records):
    caption += f" λ chosen per target on {selection_split}."
  if not partitioning.is_writer():  # every process scored the same ids
    return {}
  paths = reporting.write_results(output_dir, records,
                                  [ex for _, ex in scored], caption)
  paths.update(plots)
  with open(paths["table.md"], encoding="utf-8") as f:
    print(f.read())
  for path in sorted(paths.values()):
    print(f"Wrote {path}")
  return paths


def _sources_by_target(composition: str, tasks: Sequence[str],
                       task_vectors: Mapping[str, Any],
                       sources: Optional[Sequence[str]],
                       selection: related.Selection
                       ) -> dict[str, Optional[Sequence[str]]]:
  """{task: the sources its composition combines}: `sources`, or for a
  related composition without them each target's related task languages,
  chosen here once (`selection`: 'paper' = Table 5, 'uriel')."""
  if sources is not None or composition not in arithmetic.RELATED:
    return {task: sources for task in tasks}
  targets = {task: task_names.language(task) for task in tasks}
  chosen = related.related_by_target(list(targets.values()),
                                     sorted(task_vectors), selection)
  return {task: chosen[target] for task, target in targets.items()}


def _one_task_per_language(tasks: Sequence[str]) -> None:
  """Tables and scores.json have one column per language."""
  by_language: dict[str, str] = {}
  for task in tasks:
    lang = task_names.language(task)
    if lang in by_language:
      raise errors.ConfigError(
          f"run_eval.tasks has two tasks in language {lang!r} "
          f"({by_language[lang]}, {task}); evaluate each task family in its "
          "own run")
    by_language[lang] = task


def adapter_method(manifest) -> tuple[str, dict[str, Any]]:
  """How an adapter evaluated as is is labelled: the composition `lta merge`
  recorded in its provenance, a multilingual adapter (trained on a mixture,
  so no language), or a single-language task vector."""
  made_by = manifest.provenance.get("composition")
  if made_by in methods.METHODS:
    return made_by, {"sources": tuple(manifest.provenance.get("sources", ()))}
  if not manifest.language:
    return "baseline_multilingual", {}
  return "task_vector", {"sources": (manifest.language,)}


_BASELINE_CHOICES = ("include", "exclude", "only")


def _check_baseline(baseline: str, composition: Optional[str]) -> None:
  if baseline not in _BASELINE_CHOICES:
    raise errors.ConfigError(
        f"run_eval.baseline={baseline!r}: expected one of "
        f"{', '.join(_BASELINE_CHOICES)}"
        f"{errors.did_you_mean(baseline, _BASELINE_CHOICES)}")
  if baseline == "only" and composition is None:
    raise errors.ConfigError(
        "run_eval.baseline='only' needs a composition: the baseline is its "
        "task vector alone (a sweep over single adapters: lta sweep "
        "--eval_baseline=every_job)")


def compared_methods(composition: str, sources: Optional[Sequence[str]],
                     baseline: str = "include") -> list[str]:
  """The composition and, with one source, the task vector of that source
  alone: the paper's baseline. Several or default (related) sources have
  no single-source baseline; theirs are separate runs (baseline_best,
  baseline_multilingual). `baseline` ("include", "exclude", "only") is
  run_eval.baseline: `lta sweep` scores the baseline once, in a job of its
  own, and the λ jobs without it."""
  has_baseline = (composition != "task_only" and sources is not None and
                  len(sources) == 1)
  if baseline == "only":
    if not has_baseline:
      raise errors.ConfigError(
          "run_eval.baseline='only' scores the task vector of one source: "
          f"bind run_eval.sources to one language (got {sources!r}) and a "
          f"composition other than task_only (got {composition!r})")
    return ["task_only"]
  if baseline == "include" and has_baseline:
    return ["task_only", composition]
  return [composition]


def _plots(records: Sequence[ResultRecord], composition: str,
           output_dir: str) -> dict[str, str]:
  """The λ sweep against the baseline, and the paper's Figure 2."""
  os.makedirs(output_dir, exist_ok=True)
  plots = {}
  swept = [r for r in records
           if r.method == composition and len(r.selection_scores) > 1]
  if swept:
    plots["lambda_sweep.png"] = reporting.plot_lambda_sweep(
        swept, os.path.join(output_dir, "lambda_sweep.png"),
        baselines=[r for r in records if r.method == "task_only"])
  heatmap = reporting.plot_relative_improvement(
      records, composition,
      os.path.join(output_dir, "relative_improvement.png"))
  if heatmap:
    plots["relative_improvement.png"] = heatmap
  return plots
