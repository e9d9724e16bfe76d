"""`lta eval`: decode and score tasks for one adapter or one composition.

One base checkpoint (HF directory or T5X checkpoint), then either
  * nothing else: the base model itself;
  * `adapter_dir`: one exported adapter (trained or merged);
  * `composition` with task/language vector directories: composed per
    target language at each λ of `lambdas`. With several λ the best one per
    target is chosen on `selection_split` and reported on `split`, as the
    paper does; the composition is always compared with the task-vector
    baseline, and a heatmap of the relative improvement is written.
Every adapter is checked against the base model's fingerprint, merged into
the base weights, and decoded at the base model's cost.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import gin
import jax
import seqio

from lta import arithmetic
from lta import compat
from lta import evaluation
from lta import input_pipeline
from lta import reporting
from lta import sweep
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.errors import ConfigError
from lta.merge_job import load_adapters
from lta.model.config import T5Config
from lta.model.network import Transformer
from lta.models import DecodingConfig, EncoderDecoderModel
from lta.peft import adapter_io
from lta.peft import merge
from lta.peft.manifest import Adapter


class MergedScorer:
  """Merges an adapter into one base model, then decodes and scores a task."""

  def __init__(self, base_path: str, feature_lengths: Mapping[str, int],
               batch_size: int, decoding: DecodingConfig,
               max_examples: Optional[int] = None,
               fidelity_fn: Optional[evaluation.FidelityFn] = None,
               model_config: Optional[T5Config] = None):
    self.base_path = base_path
    self.config, self.params = base_model.load_base_model(
        base_path, model_config, "run_eval.base_checkpoint",
        "run_eval.model_config")
    self.fingerprint = fingerprint.base_model_fingerprint(self.config,
                                                          self.params)
    self.model = EncoderDecoderModel(Transformer(self.config))
    self.predict_fn = evaluation.make_predict_fn(self.model, decoding)
    self.feature_lengths = dict(feature_lengths)
    self.batch_size = batch_size
    self.max_examples = max_examples
    self.fidelity_fn = fidelity_fn
    self._examples: dict[tuple[str, str], list] = {}

  def examples(self, task: str, split: str) -> list:
    if (task, split) not in self._examples:
      self._examples[(task, split)] = evaluation.load_examples(
          task, split, self.feature_lengths, self.max_examples)
    return self._examples[(task, split)]

  def variables(self, adapter: Optional[Adapter]) -> dict[str, Any]:
    if adapter is None:
      return {"params": self.params}
    compat.check_base([adapter], self.fingerprint, self.base_path)
    return {"params": merge.merge_into_base(self.params, adapter.tree,
                                            adapter.config)}

  def score(self, adapter: Optional[Adapter], task: str,
            split: str) -> evaluation.TaskResult:
    examples = self.examples(task, split)
    ids = evaluation.decode_examples(
        self.predict_fn, jax.device_put(self.variables(adapter)), examples,
        self.batch_size, self.feature_lengths["inputs"])
    return evaluation.score_task(task, examples, ids,
                                 fidelity_fn=self.fidelity_fn)


def select_lambda_and_score(
    score: Callable[[Adapter, str], evaluation.TaskResult],
    compose: Callable[[float], Adapter], lambdas: Sequence[float],
    selection_split: str, split: str,
    selection_score: Callable[[evaluation.TaskResult], float]
) -> tuple[evaluation.TaskResult, dict[float, float]]:
  """Scores every λ on selection_split, then the best one on split.

  score(adapter, split) decodes and scores one task. The selection scores
  are returned (λ -> score) for plots, even for a single λ.
  """
  by_lambda = {float(lam): selection_score(score(compose(lam),
                                                 selection_split))
               for lam in lambdas}
  lam = sweep.best_lambda({"": by_lambda})[""]
  result = score(compose(lam), split)
  result.scores["lambda"] = lam
  return result, by_lambda


@gin.configurable
def run_eval(*, output_dir: str = gin.REQUIRED,
             base_checkpoint: str = gin.REQUIRED,
             tasks: Sequence[str] = gin.REQUIRED,
             task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
             split: str = "test", selection_split: str = "validation",
             batch_size: int = 8, decoding: Optional[DecodingConfig] = None,
             max_examples: Optional[int] = None,
             adapter_dir: Optional[str] = None,
             composition: Optional[str] = None,
             task_vectors: Optional[Mapping[str, str]] = None,
             language_vectors: Optional[Mapping[str, str]] = None,
             sources: Optional[Sequence[str]] = None,
             lambdas: Union[float, Sequence[float]] = 1.0,
             space: str = "factor", selection: str = "paper",
             tfds_data_dir: Optional[str] = None,
             mixture_or_task_module: str = "lta_tasks",
             allow_extrapolation: bool = False,
             allow_unlabelled: bool = False,
             model_config: Optional[T5Config] = None) -> dict[str, str]:
  """Writes predictions.jsonl, scores.csv/json, table.md (and plots).

  λ must lie in [0, 1] unless allow_extrapolation; allow_unlabelled accepts
  vectors whose manifests name no task or language. `model_config`
  (@T5Config() and a gin/models file) is the architecture of a T5X
  base_checkpoint; an HF one brings its own.
  """
  __import__(mixture_or_task_module)
  if tfds_data_dir:
    seqio.set_tfds_data_dir_override(tfds_data_dir)
  if adapter_dir and composition:
    raise ConfigError("run_eval: give adapter_dir or composition, not both.")
  lambdas = sweep.check_lambdas(
      lambdas, allow_extrapolation=allow_extrapolation,
      name="run_eval.lambdas", switch="run_eval.allow_extrapolation=True")
  for task in tasks:
    input_pipeline.check_task(task)  # unknown names fail before decoding
  if composition is not None:
    task_vecs = load_adapters(task_vectors or {}, "task")
    lang_vecs = load_adapters(language_vectors or {}, "language")
    for task in tasks:  # refuse a composition before decoding anything
      arithmetic.plan(composition, task_vectors=task_vecs,
                      language_vectors=lang_vecs,
                      target=evaluation.task_language(task), sources=sources,
                      lam=lambdas[0], selection=selection,
                      allow_extrapolation=allow_extrapolation,
                      allow_unlabelled=allow_unlabelled)
  scorer = MergedScorer(base_checkpoint, task_feature_lengths, batch_size,
                        decoding or DecodingConfig(
                            max_decode_length=task_feature_lengths["targets"]),
                        max_examples, model_config=model_config)
  results: dict[str, list[evaluation.TaskResult]] = {}
  plots: dict[str, str] = {}
  if composition is None:
    adapter = None
    label = "base model"
    if adapter_dir:
      tree, manifest = adapter_io.load_adapter(adapter_dir)
      adapter = Adapter(tree, manifest, name=adapter_dir)
      label = f"{manifest.task}[{manifest.language}] adapter"
    results[label] = [scorer.score(adapter, t, split) for t in tasks]
  else:
    results, plots = _eval_composition(
        scorer, tasks, composition, task_vecs, lang_vecs, sources, lambdas,
        space, selection, selection_split, split, output_dir,
        allow_extrapolation=allow_extrapolation,
        allow_unlabelled=allow_unlabelled)
  caption = (f"{split} split; main metric per task; base "
             f"{scorer.config.name} ({base_checkpoint}).")
  paths = reporting.write_results(output_dir, results, caption)
  paths.update(plots)
  with open(paths["table.md"], encoding="utf-8") as f:
    print(f.read())
  return paths


def _eval_composition(scorer, tasks, composition, task_vecs, lang_vecs,
                      sources, lambdas, space, selection, selection_split,
                      split, output_dir, **checks):
  """The composition (λ chosen per target) next to the task-only baseline."""
  methods = {"Task vector only (baseline)": ("task_only", (1.0,)),
             composition: (composition, lambdas)}
  results: dict[str, list[evaluation.TaskResult]] = {m: [] for m in methods}
  sweeps: dict[str, dict[float, float]] = {}
  for task in tasks:
    target = evaluation.task_language(task)
    for label, (name, grid) in methods.items():
      if name == "task_only" and sources and len(sources) != 1:
        continue  # the single-source baseline needs one source

      def compose(lam, name=name, target=target):
        tree, manifest = arithmetic.compose(
            name, task_vectors=task_vecs, language_vectors=lang_vecs,
            target=target, sources=sources, lam=lam, space=space,
            selection=selection, **checks)
        return Adapter(tree, manifest, name=f"{name}[{target}, λ={lam}]")

      metric = evaluation.main_metric(task)
      result, by_lambda = select_lambda_and_score(
          lambda adapter, s, task=task: scorer.score(adapter, task, s),
          compose, grid, selection_split, split,
          lambda r, metric=metric: r.scores[metric])
      results[label].append(result)
      if name == composition and len(grid) > 1:
        sweeps[target] = by_lambda
  results = {k: v for k, v in results.items() if v}
  plots = {}
  os.makedirs(output_dir, exist_ok=True)
  if sweeps:
    plots["lambda_sweep.png"] = reporting.plot_lambda_sweep(
        sweeps, os.path.join(output_dir, "lambda_sweep.png"),
        metric=f"{selection_split} score ({composition})")
  base_label = "Task vector only (baseline)"
  if base_label in results and composition in results:
    source = "+".join(sources) if sources else "sources"
    rel = reporting.relative_improvement(
        {source: reporting.metric_rows({"m": results[composition]})["m"]},
        {source: reporting.metric_rows({"m": results[base_label]})["m"]})
    plots["relative_improvement.png"] = reporting.plot_heatmap(
        rel, os.path.join(output_dir, "relative_improvement.png"))
  return results, plots
