"""The paper's whole pipeline: task and language vectors, composition, scoring.

Stages (each prints one banner; the trainer prints progress lines):
  1. data and vocabulary: XLSum release files and mC4 json.gz shards (a
     synthetic world by default, real files by gin), a SentencePiece model;
  2. the base model: INITIAL_CHECKPOINT_PATH, or the tiny model pre-trained
     here from scratch on the unlabelled text (prefix-LM, optionally with
     BERT-style denoising; full training);
  3. the task vector on the source language (XLSum), and on each of
     `task_sources`;
  4. the language vectors, prefix-LM on mC4, for the sources and targets;
  5. sanity checks (each task vector on its own language), compositions
     (task only; language and task, add; add and subtract; with task data in
     several sources the paper's Table 2 rows over related sources), each at
     every λ of the grid, decoded and scored: λ picked per target on
     validation, reported on test;
  6. the per-language table, and a plot of score against λ.

A stage records its config next to its outputs (lta.pipeline.stages): a re-run skips
what it already made with the same config ("cached, skipped"), resumes what
it left unfinished, and refuses to overwrite a trained model made with
another config. The results (stages 5 and 6) are redone when any config
value changes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import gin
import seqio

from lta import errors
from lta.adapters import adapter_io
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter
from lta.arithmetic import compositions as arithmetic
from lta.data import task_names
from lta.data import vocab
from lta.eval import composed
from lta.eval import lambda_selection
from lta.eval import methods
from lta.eval import scoring as evaluation
from lta.eval.results import ResultRecord
from lta.languages import related as related_lib
from lta.models import families
from lta.models.contract import DecodingConfig
from lta.models.mt5.config import T5Config
from lta.pipeline import data as pipeline_data
from lta.pipeline import report as pipeline_report
from lta.pipeline import stages
from lta.pipeline.data import Data
from lta.train import loop as trainer
from lta.train.optimizers import make_optimizer, make_schedule

PRETRAIN_OBJECTIVES = ("prefix_lm", "denoise")
# Compositions scored for every target; rows are labelled by lta.eval.methods.
METHODS = ("task_only", "lang_task_add", "lang_task_add_subtract")
# Run when task vectors exist in several sources (PipelineConfig.task_sources).
RELATED_METHODS = arithmetic.RELATED
ADD_ALL = "task_only_add_all"  # over every source with task data
# (task, language vector task) by whether the base is decoder-only: the
# prompt -> answer twins of the mT5 tasks (lta_tasks.decoder_only).
TASKS = {False: ("xlsum.{}", "mc4_prefix_lm.{}"),
         True: ("xlsum_prompt.{}", "mc4_decoder_prefix_lm.{}")}


@gin.configurable
def base_model_config(
    config: Optional[families.ModelConfig] = None) -> families.ModelConfig:
  """The base's architecture: T5Config() unless gin binds `config`
  (experiments/decoder_only.gin binds @DecoderConfig())."""
  return config if config is not None else T5Config()


def task_name(model_config: families.ModelConfig, lang: str,
              language_vector: bool = False) -> str:
  return TASKS[families.is_decoder_only(model_config)][language_vector].format(
      lang)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Every knob of the pipeline; the defaults run on a laptop CPU."""
  workdir: str = "lta_runs/pipeline"
  source: str = "en"
  targets: tuple[str, ...] = ("pt", "uk")
  # Data: None means "generate a synthetic world of this preset".
  world_preset: str = "tiny"
  world_seed: int = 0
  # Keep only these languages of the preset (empty: all of them).
  world_languages: tuple[str, ...] = ()
  # Where the world, vocabulary and TFDS data go (None: workdir); runs that
  # share it share the data.
  data_dir: Optional[str] = None
  xlsum_manual_dir: Optional[str] = None
  mc4_local_dir: Optional[str] = None
  vocab_path: Optional[str] = None
  # Base model: None means pre-train the configured (tiny) model.
  initial_checkpoint_path: Optional[str] = None
  # Where the pre-trained base goes (None: <workdir>/base); runs that share
  # it pre-train once, with the first run's seed.
  base_dir: Optional[str] = None
  pretrain_steps: int = 300
  # T5 objectives mixed for pre-training: "prefix_lm", "denoise" (BERT-style,
  # lta.data.denoising; teaches a tiny model to copy).
  pretrain_objectives: tuple[str, ...] = ("prefix_lm",)
  pretrain_learning_rate: float = 3e-3
  task_steps: int = 150
  language_steps: int = 100
  adapter_learning_rate: float = 2e-3
  batch_size: int = 16
  input_length: int = 128
  target_length: int = 16
  lambdas: tuple[float, ...] = lambda_selection.DEFAULT_GRID
  # λ outside [0, 1] inverts the method; only when asked for by name.
  allow_extrapolation: bool = False
  space: str = "factor"
  eval_examples: int = 16
  # λ decoded side by side in one call (lta.eval.composed.MergedScorer).
  adapters_per_call: int = 4
  # Validation metric that picks λ (e.g. "exact_match" on synthetic data).
  selection_metric: str = "rouge2"
  # Prefix-LM / task loss on this many validation batches after training
  # (0: none); written to results/sanity.json.
  eval_steps: int = 0
  # More source languages with task data: their task and language vectors
  # are trained too, and RELATED_METHODS are run.
  task_sources: tuple[str, ...] = ()
  # Compositions scored after METHODS (and RELATED_METHODS), e.g.
  # ("task_only_add_all",): the mean of every source's task vector.
  extra_methods: tuple[str, ...] = ()
  seed: int = 0
  # A task vector scoring below this ROUGE-2 on its own language's test set
  # has not learned the task (real XLSum task vectors score 10-25): the
  # table marks the rows that use it, and the run prints a warning.
  sanity_min_rouge2: float = 5.0
  # One line saying what a run on synthetic data is for, printed first and
  # under the table (the demo's gin file sets it; empty: none).
  synthetic_note: str = ""
  # Persist XLA compilations under <data_dir or workdir>/jax_cache, unless a
  # cache is set already (lta miniature sets one): the adapters share one
  # training program, so only the first compiles it.
  compilation_cache: bool = True
  # The rate in the optimizer state: several rates, one compiled step.
  rate_in_state: bool = False

  def __post_init__(self):
    if self.source in self.targets:
      raise ValueError(f"PipelineConfig: the source {self.source!r} is also "
                       f"a target {self.targets}.")
    overlap = set(self.task_sources) & set(self.targets)
    if overlap or self.source in self.task_sources:
      raise ValueError(f"PipelineConfig.task_sources {self.task_sources} "
                       f"must not repeat the source {self.source!r} or hold "
                       f"a target {self.targets}.")
    unknown = set(self.pretrain_objectives) - set(PRETRAIN_OBJECTIVES)
    if unknown or not self.pretrain_objectives:
      raise ValueError(f"PipelineConfig.pretrain_objectives "
                       f"{self.pretrain_objectives}: choose from "
                       f"{sorted(PRETRAIN_OBJECTIVES)}.")
    unknown = [m for m in self.extra_methods
               if m not in arithmetic.COMPOSITIONS]
    if unknown:
      raise errors.ConfigError(
          f"PipelineConfig.extra_methods: unknown composition {unknown[0]!r}"
          + errors.did_you_mean(unknown[0], arithmetic.COMPOSITIONS))
    lambda_selection.check_lambdas(
        self.lambdas, allow_extrapolation=self.allow_extrapolation,
        name="PipelineConfig.lambdas",
        switch="PipelineConfig.allow_extrapolation=True")

  @property
  def sources(self) -> tuple[str, ...]:
    """Every language with task data, `source` first."""
    return (self.source,) + tuple(self.task_sources)

  @property
  def languages(self) -> tuple[str, ...]:
    return self.sources + tuple(self.targets)

  @property
  def methods(self) -> dict[str, str]:
    """Table row label -> composition name."""
    names = METHODS + (RELATED_METHODS if self.task_sources else ())
    names += tuple(m for m in self.extra_methods if m not in names)
    return {methods.label(name): name for name in names}

  @property
  def shared_dir(self) -> str:
    return self.data_dir or self.workdir

  @property
  def feature_lengths(self) -> dict[str, int]:
    return {"inputs": self.input_length, "targets": self.target_length}


STAGES = ("data and vocabulary", "base model", "task vectors",
          "language vectors", "compositions, decoding and scoring", "results")


def banner(text: str) -> None:
  print(f"\n=== {text} ===", flush=True)


def stage_banner(number: int) -> None:
  banner(f"[{number}/{len(STAGES)}] {STAGES[number - 1]}")


def say(text: str) -> None:
  print(text, flush=True)


def _pretrain_mixture(languages: Sequence[str],
                      objectives: Sequence[str] = ("prefix_lm",),
                      model_config: Optional[families.ModelConfig] = None
                      ) -> str:
  from lta.data import denoising  # pylint: disable=g-import-not-at-top
  model_config = model_config or T5Config()
  tasks = {"prefix_lm": lambda lang: task_name(model_config, lang, True),
           "denoise": denoising.register}
  name = "pipeline_pretrain." + "_".join(languages)
  if tuple(objectives) != ("prefix_lm",):
    name += "." + "_".join(objectives)
  if families.is_decoder_only(model_config):
    name += ".decoder_only"
  if name not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(
        name, [tasks[o](lang) for o in objectives for lang in languages],
        default_rate=1.0)
  return name


def _train(cfg: PipelineConfig, data: Data, model_dir: str, task: str,
           steps: int, *, model_config: families.ModelConfig, base: Optional[str],
           adapter: Optional[AdapterConfig], learning_rate: float,
           **kwargs) -> trainer.TrainResult:
  with vocab.use_vocabulary(data.vocab_path):
    return trainer.train(
        model_dir=model_dir, mixture_or_task_name=task,
        task_feature_lengths=cfg.feature_lengths, train_steps=steps,
        initial_checkpoint_path=base, mixture_or_task_module="lta_tasks",
        adapter=adapter, model_config=model_config,
        batch_size=cfg.batch_size, seed=cfg.seed,
        optimizer=(make_optimizer(name="adamw", rate_in_state=learning_rate)
                   if cfg.rate_in_state else make_optimizer(
                       name="adamw",
                       schedule=make_schedule(learning_rate=learning_rate))),
        log_period=max(steps // 5, 1), checkpoint_period=steps,
        eval_period=steps if cfg.eval_steps else 0,
        eval_steps=max(cfg.eval_steps, 1), async_checkpointing=False,
        **kwargs)


HISTORY_FILE = "history.json"


def _write_history(model_dir: str, result: trainer.TrainResult) -> None:
  """The last training and validation losses, for results/sanity.json."""
  def last(history):
    return {k: float(v) for k, v in history[-1].items()} if history else {}

  with open(os.path.join(model_dir, HISTORY_FILE), "w") as f:
    json.dump({"steps": result.step, "train": last(result.history),
               "validation": last(result.eval_history)}, f, indent=2)


def _read_history(model_dir: str) -> dict[str, Any]:
  path = os.path.join(model_dir, HISTORY_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _training_spec(cfg: PipelineConfig, data: Data, task: str,
                   *fields: str) -> dict[str, Any]:
  """What a trained model depends on: PipelineConfig `fields` and more.

  Keys are PipelineConfig field names where there is one, so a refusal
  names the binding to change.
  """
  names = fields + ("batch_size", "input_length", "target_length", "seed")
  return {"task": task, "data": data.digest,
          **{name: getattr(cfg, name) for name in names}}


def _run_stage(stage: stages.Stage, label: str,
               train: Callable[[], trainer.TrainResult]) -> None:
  """Trains unless the stage is cached; records it and its last losses."""
  state = stages.check(stage)
  if state == stages.CACHED:
    say(f"{label}: {stages.SKIPPED}")
    return
  say(label + (" (resuming)" if state == stages.RESUME else ""))
  stages.start(stage)
  result = train()
  if result.preempted:  # checkpointed, not finished: the rerun resumes it
    raise errors.Preempted(
        f"{label}: stopped at step {result.step} after saving a checkpoint; "
        "rerun the same command to resume")
  _write_history(os.path.dirname(stage.record_path), result)
  stages.finish(stage)


@dataclasses.dataclass(frozen=True)
class Base:
  path: str  # an HF checkpoint directory
  digest: str  # its stage's, or the configured checkpoint's path


def base_model(cfg: PipelineConfig, model_config: families.ModelConfig,
               data: Data) -> Base:
  """The base checkpoint: the configured one, or a tiny one trained here."""
  if cfg.initial_checkpoint_path:
    say(f"given: {cfg.initial_checkpoint_path}")
    return Base(cfg.initial_checkpoint_path, cfg.initial_checkpoint_path)
  model_dir = cfg.base_dir or os.path.join(cfg.workdir, "base")
  mixture = _pretrain_mixture(cfg.languages, cfg.pretrain_objectives,
                              model_config)
  spec = {**_training_spec(cfg, data, mixture, "pretrain_steps",
                           "pretrain_learning_rate"),
          "model": model_config.to_dict()}
  if cfg.base_dir:  # shared: pre-trained once, with the first run's seed
    del spec["seed"]
  stage = stages.Stage.in_dir("base model", model_dir, spec)
  _run_stage(
      stage, f"pre-training the {model_config.name} model from scratch: "
      f"{cfg.pretrain_steps} steps, {' + '.join(cfg.pretrain_objectives)} on "
      f"{', '.join(cfg.languages)}",
      lambda: _train(cfg, data, model_dir, mixture, cfg.pretrain_steps,
                     model_config=model_config, base=None, adapter=None,
                     learning_rate=cfg.pretrain_learning_rate,
                     trainable="full", export_adapter=False,
                     export_model=True))
  return Base(os.path.join(model_dir, "model"), stage.digest)


def train_adapter(cfg: PipelineConfig, name: str, task: str,
                  steps_field: str, base: Base, model_config: families.ModelConfig,
                  adapter: AdapterConfig, data: Data) -> tuple[Adapter, str]:
  """The adapter trained on `task` (or found cached), and its digest.

  Trained for PipelineConfig.<steps_field> steps.
  """
  model_dir = os.path.join(cfg.workdir, name)
  steps = getattr(cfg, steps_field)
  spec = {**_training_spec(cfg, data, task, steps_field,
                           "adapter_learning_rate"),
          "adapter": adapter.to_dict(), "base": base.digest}
  stage = stages.Stage.in_dir(f"{name} adapter", model_dir, spec)
  _run_stage(stage, f"{name}: {task}, {steps} steps",
             lambda: _train(cfg, data, model_dir, task, steps,
                            model_config=model_config, base=base.path,
                            adapter=adapter,
                            learning_rate=cfg.adapter_learning_rate))
  tree, manifest = adapter_io.load_adapter(os.path.join(model_dir, "adapter"))
  return Adapter(tree, manifest, name=name), stage.digest


def fine_tune_model(cfg: PipelineConfig, name: str, task: str, steps: int,
                    learning_rate: float, base: Base,
                    model_config: families.ModelConfig, data: Data) -> Base:
  """The base fully fine-tuned on `task` (or found cached), exported."""
  model_dir = os.path.join(cfg.workdir, name)
  spec = {**_training_spec(cfg, data, task), "steps": steps,
          "learning_rate": learning_rate, "base": base.digest}
  stage = stages.Stage.in_dir(f"{name} model", model_dir, spec)
  _run_stage(stage, f"{name}: {task}, {steps} steps, every parameter",
             lambda: _train(cfg, data, model_dir, task, steps,
                            model_config=model_config, base=base.path,
                            adapter=None, learning_rate=learning_rate,
                            trainable="full", export_adapter=False,
                            export_model=True))
  return Base(os.path.join(model_dir, "model"), stage.digest)


class Scorer(composed.MergedScorer):
  """Merges an adapter into the base and scores XLSum tasks, with the
  pipeline's vocabulary; on synthetic data also by exact match."""

  def __init__(self, cfg: PipelineConfig, base_path: str, data: Data):
    super().__init__(base_path, cfg.feature_lengths, cfg.batch_size,
                     DecodingConfig(max_decode_length=cfg.target_length),
                     cfg.eval_examples, data.fidelity_fn(),
                     vocabulary=data.vocab_path,
                     adapters_per_call=cfg.adapters_per_call)
    self.world = data.world

  def task(self, lang: str) -> str:
    """The XLSum task of `lang` that this base reads."""
    return task_name(self.config, lang)

  def score_decoded(self, task: str, examples: Sequence[Any],
                    ids: Sequence[Any]) -> evaluation.TaskResult:
    result = super().score_decoded(task, examples, ids)
    if self.world is not None and task.startswith("xlsum"):  # one answer
      from lta.synthetic import scoring  # pylint: disable=g-import-not-at-top
      result.scores.update(scoring.headline_scores(
          [r["target"] for r in result.examples],
          [r["prediction"] for r in result.examples],
          task_names.language(task), self.world))
    return result


def related_sources(cfg: PipelineConfig,
                    data: Data) -> dict[str, list[str]]:
  """{target: the sources with task data related to it}: the paper's Table 5,
  or on synthetic data the world's own ranking."""
  selection: related_lib.Selection = "paper"
  if data.world is not None:
    selection = {t: data.world.related_sources(t) for t in cfg.targets}
  return related_lib.related_by_target(cfg.targets, cfg.sources, selection)


def run_pipeline(cfg: PipelineConfig, model_config: families.ModelConfig,
                 adapter: AdapterConfig) -> dict[str, str]:
  """Runs (or skips, when cached) every stage; returns the result files."""
  t0 = time.time()
  os.makedirs(cfg.workdir, exist_ok=True)
  if cfg.compilation_cache:
    use_compilation_cache(os.path.join(cfg.shared_dir, "jax_cache"))
  synthetic = cfg.xlsum_manual_dir is None or cfg.mc4_local_dir is None
  if synthetic and cfg.synthetic_note:
    say(cfg.synthetic_note)
  stage_banner(1)
  data = pipeline_data.prepare_data(cfg, model_config)
  stage_banner(2)
  base = base_model(cfg, model_config, data)
  digests = {}
  task_vectors, language_vectors = {}, {}
  stage_banner(3)
  for lang in cfg.sources:
    task_vectors[lang], digests[f"task_{lang}"] = train_adapter(
        cfg, f"task_{lang}", task_name(model_config, lang), "task_steps", base,
        model_config, adapter, data)
  stage_banner(4)
  for lang in cfg.languages:
    language_vectors[lang], digests[f"lang_{lang}"] = train_adapter(
        cfg, f"lang_{lang}", task_name(model_config, lang, True),
        "language_steps",
        base, model_config, adapter, data)
  paths = score_and_report(cfg, model_config, data, base, task_vectors,
                           language_vectors, digests, t0)
  say(f"Wrote {', '.join(sorted(paths.values()))}")
  say(f"Pipeline finished in {time.time() - t0:.0f}s")
  return paths


def use_compilation_cache(directory: str) -> None:
  """Persists XLA compilations in `directory`, unless a cache is set."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_compilation_cache_dir is None:
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def score_and_report(cfg: PipelineConfig, model_config: families.ModelConfig, data: Data,
                     base: Base, task_vectors: Mapping[str, Adapter],
                     language_vectors: Mapping[str, Adapter],
                     digests: Mapping[str, str], t0: float) -> dict[str, str]:
  """Stages 5 and 6, redone whenever any config value changed."""
  stage_banner(5)
  out_dir = os.path.join(cfg.workdir, "results")
  stage = stages.Stage.in_dir("results", out_dir, {
      "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                 if k not in ("workdir", "data_dir", "base_dir",
                              "compilation_cache")},
      "model": model_config.to_dict(), "adapters": dict(digests)})
  state = stages.check(stage, redo_stale=True)
  if state == stages.CACHED:
    say(stages.SKIPPED)
  else:
    if state == stages.STALE:
      say(f"the config changed since {out_dir} was written "
          f"({'; '.join(stages.changes(stage))}): scoring again")
    stages.start(stage)
    scorer = Scorer(cfg, base.path, data)
    related = related_sources(cfg, data) if cfg.task_sources else {}
    sanity = sanity_checks(cfg, scorer, task_vectors, related)
    scored = compose_and_score(cfg, scorer, task_vectors, language_vectors,
                               related)
  stage_banner(6)
  if state == stages.CACHED:
    say(f"{stages.SKIPPED} ({out_dir})")
    paths = {name: os.path.join(out_dir, name)
             for name in pipeline_report.RESULT_FILES}
  else:
    sanity["seconds"] = time.time() - t0
    paths = pipeline_report.write_report(
        out_dir, scored, sanity, caption(cfg, data, sanity),
        cfg.selection_metric)
    stages.finish(stage)
  with open(paths["table.md"], encoding="utf-8") as f:
    say(f.read())
  with open(paths["sanity.json"], encoding="utf-8") as f:
    failure = pipeline_report.sanity_failure(json.load(f))
  if failure:
    say(f"WARNING: {failure}")
  return paths


def caption(cfg: PipelineConfig, data: Data,
            sanity: Mapping[str, Any]) -> str:
  """What the table shows, the sanity check, and the run's note."""
  text = (f"XLSum test, ROUGE-2 (spm) on {cfg.eval_examples} examples per "
          f"language; task vector trained on {cfg.source}; λ chosen per "
          f"target on validation {cfg.selection_metric}.")
  related = sanity["related_sources"]
  if related:
    text += " Related sources: " + "; ".join(
        f"{t}: {', '.join(s)}" for t, s in related.items()) + "."
  text += " " + pipeline_report.sanity_caption(sanity)
  if data.world is not None and cfg.synthetic_note:
    text += f"\n\n{cfg.synthetic_note}"
  return text


def sanity_checks(cfg: PipelineConfig, scorer: Scorer,
                  task_vectors: Mapping[str, Adapter],
                  related: Mapping[str, Sequence[str]]) -> dict[str, Any]:
  """Whether the parts work before they are composed.

  Returns the last training and validation losses of every model trained
  here; each task vector's scores on its own language's test set (the
  supervised upper bound that zero-shot transfer starts from); and
  pipeline_report.sanity_flags: those below `cfg.sanity_min_rouge2`, and
  the table rows that use them.
  """
  histories = {"base": _read_history(
      cfg.base_dir or os.path.join(cfg.workdir, "base"))}
  for name in sorted(os.listdir(cfg.workdir)):
    if name.startswith(("task_", "lang_")):
      histories[name] = _read_history(os.path.join(cfg.workdir, name))
  source_scores = {}
  for lang, vector in task_vectors.items():
    scores = scorer.score(vector, scorer.task(lang), "test").scores
    source_scores[lang] = scores
    say(f"task vector {lang} on {scorer.task(lang)} test: ROUGE-2 "
        f"{scores['rouge2']:.2f}" + (
            f" | exact match {scores['exact_match']:.0f}%"
            if "exact_match" in scores else ""))
  flags = pipeline_report.sanity_flags(
      {lang: s["rouge2"] for lang, s in source_scores.items()},
      cfg.sanity_min_rouge2, cfg.methods, cfg.source, related)
  return {"training": histories, "task_vector_on_source": source_scores,
          **flags, "related_sources": dict(related)}


def compose_and_score(cfg: PipelineConfig, scorer: Scorer,
                      task_vectors: Mapping[str, Adapter],
                      language_vectors: Mapping[str, Adapter],
                      related: Optional[Mapping[str, Sequence[str]]] = None
                      ) -> list[tuple[ResultRecord, list]]:
  """Per method and target: λ by the validation score, then the test score.

  Returns a result record (with the validation sweep) and the decoded test
  examples per method and target.
  """
  scored = []
  for target in cfg.targets:
    for method in cfg.methods.values():
      record, examples = composed.score_composition(
          scorer, scorer.task(target), method, task_vectors=task_vectors,
          language_vectors=language_vectors,
          sources=(related[target] if method in RELATED_METHODS
                   else list(cfg.sources) if method == ADD_ALL
                   else [cfg.source]),
          grid=cfg.lambdas, space=cfg.space, split="test",
          selection_split="validation",
          selection_metric=cfg.selection_metric,
          allow_extrapolation=cfg.allow_extrapolation)
      scored.append((record, examples))
      print(score_line(record), flush=True)
  return scored


def score_line(record: ResultRecord) -> str:
  """One console line per method and target."""
  scores = record.scores
  lam = "" if record.lam is None else f"λ={record.lam:g} | "
  extra = (f" | exact match {scores['exact_match']:.0f}%"
           if "exact_match" in scores else "")
  fidelity = record.notes.get("language_fidelity") or (
      f"{scores['language_fidelity']:.0f}%")
  return (f"  {record.language} | {record.label}: {lam}test ROUGE-2 "
          f"{scores['rouge2']:.2f}{extra} | fidelity {fidelity}")
