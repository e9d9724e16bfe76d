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
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import gin
import jax
import seqio

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta import errors
from lta.eval import scoring as evaluation
from lta.data import input_pipeline
from lta.eval import methods
from lta.eval import report as reporting
from lta.eval import lambdas as sweep
from lta.checkpoints import base_model
from lta.checkpoints import fingerprint
from lta.models.mt5.config import T5Config
from lta.models.mt5.network import Transformer
from lta.models.contract import DecodingConfig, EncoderDecoderModel
from lta.adapters import adapter_io
from lta.adapters import deltas as merge
from lta.adapters.manifest import Adapter
from lta.eval.results import ResultRecord


class MergedScorer:
  """Merges an adapter into one base model, then decodes and scores a task.

  `log` receives the decoding progress lines (None: silent).
  """

  def __init__(self, base_path: str, feature_lengths: Mapping[str, int],
               batch_size: int, decoding: DecodingConfig,
               max_examples: Optional[int] = None,
               fidelity_fn: Optional[evaluation.FidelityFn] = None,
               model_config: Optional[T5Config] = None,
               log: Optional[Callable[[str], None]] = print):
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
    self.log = log
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
    progress = None
    if self.log:
      what = adapter.label if adapter is not None else "base model"
      progress = evaluation.DecodeProgress(f"{task} ({split}) | {what}",
                                           self.log)
    ids = evaluation.decode_examples(
        self.predict_fn, jax.device_put(self.variables(adapter)), examples,
        self.batch_size, self.feature_lengths["inputs"], progress)
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
             baseline: str = "include",
             tfds_data_dir: Optional[str] = None,
             mixture_or_task_module: str = "lta_tasks",
             allow_extrapolation: bool = False,
             allow_unlabelled: bool = False,
             model_config: Optional[T5Config] = None) -> dict[str, str]:
  """Writes results.json, predictions.jsonl, scores.csv/json, table.md (and
  plots); prints the table and every path written.

  λ must lie in [0, 1] unless allow_extrapolation; allow_unlabelled accepts
  vectors whose manifests name no task or language. `model_config`
  (@T5Config() and a gin/models file) is the architecture of a T5X
  base_checkpoint; an HF one brings its own. `baseline` says whether a
  composition is scored next to its task-vector baseline ("include"), alone
  ("exclude"), or the baseline alone ("only"): `lta sweep` scores the
  baseline once for all its λ jobs.
  """
  __import__(mixture_or_task_module)
  if tfds_data_dir:
    seqio.set_tfds_data_dir_override(tfds_data_dir)
  if adapter_dir and composition:
    raise errors.ConfigError(
        "run_eval: give adapter_dir or composition, not both.")
  _check_baseline(baseline, composition)
  lambdas = sweep.check_lambdas(
      lambdas, allow_extrapolation=allow_extrapolation,
      name="run_eval.lambdas", switch="run_eval.allow_extrapolation=True")
  _one_task_per_language(tasks)
  if composition is not None:
    task_vecs = adapter_io.AdapterDirs(task_vectors or {}, "task")
    lang_vecs = adapter_io.AdapterDirs(language_vectors or {}, "language")
    for task in tasks:  # refuse a composition before decoding anything
      arithmetic.plan(composition, task_vectors=task_vecs,
                      language_vectors=lang_vecs,
                      target=evaluation.task_language(task), sources=sources,
                      lam=lambdas[0], selection=selection,
                      allow_extrapolation=allow_extrapolation,
                      allow_unlabelled=allow_unlabelled)
  for task in tasks:  # registered, with the data of the splits read here
    for s in dict.fromkeys([split] + ([selection_split] if composition
                                      else [])):
      input_pipeline.check_task(task, s)
  scorer = MergedScorer(base_checkpoint, task_feature_lengths, batch_size,
                        decoding or DecodingConfig(
                            max_decode_length=task_feature_lengths["targets"]),
                        max_examples, model_config=model_config)
  common = dict(split=split, base_checkpoint=base_checkpoint)
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
      scored.append((ResultRecord.from_scored(method, result, **fields,
                                              **common), result.examples))
  else:
    scored = _eval_composition(
        scorer, tasks, composition, task_vecs, lang_vecs, sources, lambdas,
        space, selection, selection_split, common, baseline,
        allow_extrapolation=allow_extrapolation,
        allow_unlabelled=allow_unlabelled)
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
  paths = reporting.write_results(output_dir, records,
                                  [ex for _, ex in scored], caption)
  paths.update(plots)
  with open(paths["table.md"], encoding="utf-8") as f:
    print(f.read())
  for path in sorted(paths.values()):
    print(f"Wrote {path}")
  return paths


def _one_task_per_language(tasks: Sequence[str]) -> None:
  """Tables and scores.json have one column per language."""
  by_language: dict[str, str] = {}
  for task in tasks:
    lang = evaluation.task_language(task)
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
  no single-source baseline; theirs are separate runs (Baseline (best),
  Baseline (multilingual)). `baseline` ("include", "exclude", "only") is
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


def _eval_composition(scorer, tasks, composition, task_vecs, lang_vecs,
                      sources, lambdas, space, selection, selection_split,
                      common, baseline="include", **checks
                      ) -> list[tuple[ResultRecord, list]]:
  """Each of `compared_methods`, λ chosen per target."""
  names = compared_methods(composition, sources, baseline)
  scored = []
  for task in tasks:
    target = evaluation.task_language(task)
    metric = evaluation.main_metric(task)
    for name in names:
      grid = lambdas if methods.get(name).uses_lambda else (1.0,)
      used: dict[str, Any] = {}

      def compose(lam, name=name, target=target, used=used):
        tree, manifest = arithmetic.compose(
            name, task_vectors=task_vecs, language_vectors=lang_vecs,
            target=target, sources=sources, lam=lam, space=space,
            selection=selection, **checks)
        used["sources"] = tuple(manifest.provenance.get("sources", ()))
        return Adapter(tree, manifest, name=methods.instance_label(
            name, lam, used["sources"]))

      result, by_lambda = select_lambda_and_score(
          lambda adapter, s, task=task: scorer.score(adapter, task, s),
          compose, grid, selection_split, common["split"],
          lambda r, metric=metric: r.scores[metric])
      record = ResultRecord.from_scored(
          name, result, sources=used["sources"], selection_scores=by_lambda,
          selection_split=selection_split, selection_metric=metric, **common)
      scored.append((record, result.examples))
  return scored


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
