"""The paper's whole pipeline: task and language vectors, composition, scoring.

Stages (each prints a banner, the trainer prints progress lines):
  0. data and vocabulary: XLSum release files and mC4 json.gz shards (a
     synthetic world by default, real files by gin), a SentencePiece model;
     without INITIAL_CHECKPOINT_PATH the tiny base model is pre-trained from
     scratch on the unlabelled text (prefix-LM, optionally with BERT-style
     denoising; full training);
  1. the task vector on the source language (XLSum);
  2. the language vectors, prefix-LM on mC4, for the source and each target;
  3. compositions: task only; language and task, add; add and subtract;
     each at every λ of the grid; with task data in several sources
     (`task_sources`), also the paper's Table 2 rows over related sources;
  4. decode and score: λ picked per target on validation, reported on test;
  5. the per-language table, and a plot of score against λ.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import gin
import seqio

from lta import arithmetic
from lta import eval_job
from lta import evaluation
from lta import methods
from lta import reporting
from lta import sweep
from lta import trainer
from lta import vocab
from lta.model.config import T5Config
from lta.models import DecodingConfig
from lta.optimizers import make_optimizer, make_schedule
from lta.peft import adapter_io
from lta.peft.config import AdapterConfig
from lta.peft.manifest import Adapter
from lta.results import ResultRecord

PRETRAIN_OBJECTIVES = ("prefix_lm", "denoise")
# Compositions scored for every target; rows are labelled by lta.methods.
METHODS = ("task_only", "lang_task_add", "lang_task_add_subtract")
# Run when task vectors exist in several sources (PipelineConfig.task_sources).
RELATED_METHODS = ("task_only_add_related", "lang_task_add_subtract_related")


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
  # it pre-train once.
  base_dir: Optional[str] = None
  pretrain_steps: int = 300
  # T5 objectives mixed for pre-training: "prefix_lm", "denoise" (BERT-style,
  # lta.denoising; teaches a tiny model to copy).
  pretrain_objectives: tuple[str, ...] = ("prefix_lm",)
  pretrain_learning_rate: float = 3e-3
  task_steps: int = 150
  language_steps: int = 100
  adapter_learning_rate: float = 2e-3
  batch_size: int = 16
  input_length: int = 128
  target_length: int = 16
  lambdas: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
  # λ outside [0, 1] inverts the method; only when asked for by name.
  allow_extrapolation: bool = False
  space: str = "factor"
  eval_examples: int = 16
  # Validation metric that picks λ (e.g. "exact_match" on synthetic data).
  selection_metric: str = "rouge2"
  # Prefix-LM / task loss on this many validation batches after training
  # (0: none); written to results/sanity.json.
  eval_steps: int = 0
  # More source languages with task data: their task and language vectors
  # are trained too, and RELATED_METHODS are run.
  task_sources: tuple[str, ...] = ()
  seed: int = 0

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
    sweep.check_lambdas(
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
    return {methods.label(name): name for name in names}

  @property
  def shared_dir(self) -> str:
    return self.data_dir or self.workdir

  @property
  def feature_lengths(self) -> dict[str, int]:
    return {"inputs": self.input_length, "targets": self.target_length}


def banner(text: str) -> None:
  print(f"\n=== {text} ===", flush=True)


@dataclasses.dataclass
class Data:
  xlsum_manual_dir: str
  mc4_local_dir: str
  vocab_path: str
  tfds_dir: str
  world: Any = None  # lta.synthetic WorldInfo when the data is synthetic


def prepare_data(cfg: PipelineConfig, model_config: T5Config) -> Data:
  """Writes or finds the data, trains the vocabulary, builds TFDS XLSum."""
  from lta.synthetic import world as world_lib  # only for synthetic data
  from lta_tasks import xlsum_builder  # pylint: disable=g-import-not-at-top

  world = None
  xlsum_dir, mc4_dir = cfg.xlsum_manual_dir, cfg.mc4_local_dir
  if xlsum_dir is None or mc4_dir is None:
    world_dir = os.path.join(cfg.shared_dir, "world")
    config = world_lib.preset(cfg.world_preset)
    config = dataclasses.replace(config, seed=cfg.world_seed)
    if cfg.world_languages:
      config = config.with_languages(cfg.world_languages)
    if os.path.exists(os.path.join(world_dir, "world.json")):
      world = world_lib.load_world(world_dir)
    else:
      world = world_lib.generate_world(world_dir, config)
    xlsum_dir = xlsum_dir or world.xlsum_dir
    mc4_dir = mc4_dir or world.mc4_dir
  vocab_path = cfg.vocab_path
  if vocab_path is None:
    if world is None:
      raise ValueError("PipelineConfig.vocab_path is required with real data "
                       "(the mT5 SentencePiece model).")
    vocab_path = os.path.join(cfg.shared_dir, "spm", "spm.model")
    if not os.path.exists(vocab_path):
      os.makedirs(os.path.dirname(vocab_path), exist_ok=True)
      with open(world.corpus_path, encoding="utf-8") as f:
        texts = f.read().splitlines()
      vocab.train_tiny_sentencepiece(
          texts, vocab_path[:-len(".model")],
          vocab_size=model_config.vocab_size, character_coverage=1.0)
  gin.bind_parameter("lta.vocab.get_vocabulary.path", vocab_path)
  gin.bind_parameter("lta_tasks.mc4_local_dir.path", mc4_dir)
  tfds_dir = os.path.join(cfg.shared_dir, "tfds")
  xlsum_builder.prepare(cfg.languages, data_dir=tfds_dir,
                        manual_dir=xlsum_dir)
  seqio.set_tfds_data_dir_override(tfds_dir)
  return Data(xlsum_dir, mc4_dir, vocab_path, tfds_dir, world)


def _pretrain_mixture(languages: Sequence[str],
                      objectives: Sequence[str] = ("prefix_lm",)) -> str:
  from lta import denoising  # pylint: disable=g-import-not-at-top
  tasks = {"prefix_lm": lambda lang: f"mc4_prefix_lm.{lang}",
           "denoise": denoising.register}
  name = "pipeline_pretrain." + "_".join(languages)
  if tuple(objectives) != ("prefix_lm",):
    name += "." + "_".join(objectives)
  if name not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(
        name, [tasks[o](lang) for o in objectives for lang in languages],
        default_rate=1.0)
  return name


def _train(cfg: PipelineConfig, model_dir: str, task: str, steps: int, *,
           model_config: T5Config, base: Optional[str],
           adapter: Optional[AdapterConfig], learning_rate: float,
           **kwargs) -> trainer.TrainResult:
  return trainer.train(
      model_dir=model_dir, mixture_or_task_name=task,
      task_feature_lengths=cfg.feature_lengths, train_steps=steps,
      initial_checkpoint_path=base, mixture_or_task_module="lta_tasks",
      adapter=adapter, model_config=model_config,
      batch_size=cfg.batch_size, seed=cfg.seed,
      optimizer=make_optimizer(
          name="adamw", schedule=make_schedule(learning_rate=learning_rate)),
      log_period=max(steps // 5, 1), checkpoint_period=steps,
      eval_period=steps if cfg.eval_steps else 0,
      eval_steps=max(cfg.eval_steps, 1), async_checkpointing=False, **kwargs)


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


def base_model(cfg: PipelineConfig, model_config: T5Config) -> str:
  """The base checkpoint: the configured one, or a tiny one trained here."""
  if cfg.initial_checkpoint_path:
    return cfg.initial_checkpoint_path
  model_dir = cfg.base_dir or os.path.join(cfg.workdir, "base")
  exported = os.path.join(model_dir, "model")
  if not os.path.exists(os.path.join(exported, "config.json")):
    banner(f"[0/5] pre-training the {model_config.name} base model from "
           f"scratch ({cfg.pretrain_steps} steps, "
           f"{' + '.join(cfg.pretrain_objectives)} on "
           f"{', '.join(cfg.languages)})")
    mixture = _pretrain_mixture(cfg.languages, cfg.pretrain_objectives)
    result = _train(cfg, model_dir, mixture, cfg.pretrain_steps,
                    model_config=model_config, base=None, adapter=None,
                    learning_rate=cfg.pretrain_learning_rate,
                    trainable="full", export_adapter=False, export_model=True)
    _write_history(model_dir, result)
  return exported


def train_adapter(cfg: PipelineConfig, name: str, task: str, steps: int,
                  base: str, model_config: T5Config,
                  adapter: AdapterConfig) -> Adapter:
  model_dir = os.path.join(cfg.workdir, name)
  exported = os.path.join(model_dir, "adapter")
  if not os.path.exists(os.path.join(exported, adapter_io.MANIFEST_FILE)):
    result = _train(cfg, model_dir, task, steps, model_config=model_config,
                    base=base, adapter=adapter,
                    learning_rate=cfg.adapter_learning_rate)
    _write_history(model_dir, result)
  tree, manifest = adapter_io.load_adapter(exported)
  return Adapter(tree, manifest, name=name)


def fidelity_fn(data: Data) -> Optional[Callable[[Sequence[str], str], float]]:
  """Synthetic languages need the world's own language identifier."""
  if data.world is None:
    return None
  from lta.synthetic import lexicon_lid  # pylint: disable=g-import-not-at-top
  return lambda preds, lang: lexicon_lid.language_fidelity(preds, lang,
                                                           data.world)


class Scorer(eval_job.MergedScorer):
  """Merges an adapter into the base and scores one XLSum language."""

  def __init__(self, cfg: PipelineConfig, base_path: str, data: Data):
    super().__init__(base_path, cfg.feature_lengths, cfg.batch_size,
                     DecodingConfig(max_decode_length=cfg.target_length),
                     cfg.eval_examples, fidelity_fn(data))
    self.cfg = cfg
    self.world = data.world

  def score_target(self, adapter: Adapter, target: str,
                   split: str) -> evaluation.TaskResult:
    """Scores `xlsum.<target>`, plus exact match on synthetic data."""
    result = self.score(adapter, f"xlsum.{target}", split)
    if self.world is not None:  # the synthetic task has one right answer
      from lta.synthetic import scoring  # pylint: disable=g-import-not-at-top
      result.scores.update(scoring.headline_scores(
          [r["target"] for r in result.examples],
          [r["prediction"] for r in result.examples], target, self.world))
    return result

  def selection_score(self, result: evaluation.TaskResult) -> float:
    name = self.cfg.selection_metric
    if name not in result.scores:
      raise ValueError(f"PipelineConfig.selection_metric={name!r} is not "
                       f"among the scores {sorted(result.scores)}.")
    return result.scores[name]


def related_sources(cfg: PipelineConfig, data: Data, target: str) -> list[str]:
  """The sources with task data related to `target` (the paper's Table 5)."""
  if data.world is not None:
    chosen = [s for s in data.world.related_sources(target)
              if s in cfg.sources]
  else:
    from lta import relatedness  # pylint: disable=g-import-not-at-top
    chosen = relatedness.related_sources(target, cfg.sources)
  if not chosen:
    raise ValueError(f"No source among PipelineConfig.source and "
                     f"task_sources {cfg.sources} is related to {target!r}.")
  return chosen


def run_pipeline(cfg: PipelineConfig, model_config: T5Config,
                 adapter: AdapterConfig) -> dict[str, str]:
  """Runs every stage; returns the paths of what it wrote."""
  t0 = time.time()
  os.makedirs(cfg.workdir, exist_ok=True)
  banner("[0/5] data and vocabulary")
  data = prepare_data(cfg, model_config)
  print(f"XLSum files: {data.xlsum_manual_dir}\nmC4 files: "
        f"{data.mc4_local_dir}\nvocabulary: {data.vocab_path}")
  base = base_model(cfg, model_config)

  task_vectors = {}
  for i, lang in enumerate(cfg.sources):
    banner(f"[1/5] task vector {i + 1}/{len(cfg.sources)}: xlsum.{lang} "
           f"({cfg.task_steps} steps)")
    task_vectors[lang] = train_adapter(
        cfg, f"task_{lang}", f"xlsum.{lang}", cfg.task_steps, base,
        model_config, adapter)

  language_vectors = {}
  for i, lang in enumerate(cfg.languages):
    banner(f"[2/5] language vector {i + 1}/{len(cfg.languages)}: "
           f"mc4_prefix_lm.{lang} ({cfg.language_steps} steps)")
    language_vectors[lang] = train_adapter(
        cfg, f"lang_{lang}", f"mc4_prefix_lm.{lang}", cfg.language_steps,
        base, model_config, adapter)

  banner("[3/5] compositions and [4/5] decoding and scoring")
  scorer = Scorer(cfg, base, data)
  sanity = sanity_checks(cfg, scorer, task_vectors)
  related = ({t: related_sources(cfg, data, t) for t in cfg.targets}
             if cfg.task_sources else {})
  scored = compose_and_score(cfg, scorer, task_vectors, language_vectors,
                             related)

  banner("[5/5] results")
  out_dir = os.path.join(cfg.workdir, "results")
  caption = (f"XLSum test, ROUGE-2 (spm) on {cfg.eval_examples} examples per "
             f"language; task vector trained on {cfg.source}; λ chosen per "
             f"target on validation {cfg.selection_metric}.")
  if related:
    caption += " Related sources: " + "; ".join(
        f"{t}: {', '.join(s)}" for t, s in related.items()) + "."
  records = [r for r, _ in scored]
  paths = reporting.write_results(out_dir, records, [e for _, e in scored],
                                  caption)
  paths["lambda_sweep.png"] = reporting.plot_lambda_sweep(
      [r for r in records if r.method == "lang_task_add_subtract"],
      os.path.join(out_dir, "lambda_sweep.png"),
      baselines=[r for r in records if r.method == "task_only"])
  sweeps = {r.label: {} for r in records}
  for r in records:
    sweeps[r.label][r.language] = {str(k): v
                                   for k, v in r.selection_scores.items()}
  paths["lambda_sweep.json"] = os.path.join(out_dir, "lambda_sweep.json")
  with open(paths["lambda_sweep.json"], "w") as f:
    json.dump(sweeps[methods.label("lang_task_add_subtract")], f, indent=2)
  paths["lambda_sweeps.json"] = os.path.join(out_dir, "lambda_sweeps.json")
  with open(paths["lambda_sweeps.json"], "w") as f:
    json.dump({"metric": cfg.selection_metric, "split": "validation",
               "sweeps": sweeps}, f, indent=2)
  paths["sanity.json"] = os.path.join(out_dir, "sanity.json")
  with open(paths["sanity.json"], "w") as f:
    json.dump({**sanity, "related_sources": related,
               "seconds": time.time() - t0}, f, indent=2)
  with open(paths["table.md"], encoding="utf-8") as f:
    print(f.read())
  print(f"Wrote {', '.join(sorted(paths.values()))}")
  print(f"Pipeline finished in {time.time() - t0:.0f}s")
  return paths


def sanity_checks(cfg: PipelineConfig, scorer: Scorer,
                  task_vectors: Mapping[str, Adapter]) -> dict[str, Any]:
  """Whether the parts work before they are composed.

  Returns the last training and validation losses of every model trained
  here, and each task vector's scores on its own language's test set (the
  supervised upper bound that zero-shot transfer starts from).
  """
  histories = {"base": _read_history(
      cfg.base_dir or os.path.join(cfg.workdir, "base"))}
  for name in sorted(os.listdir(cfg.workdir)):
    if name.startswith(("task_", "lang_")):
      histories[name] = _read_history(os.path.join(cfg.workdir, name))
  source_scores = {}
  for lang, vector in task_vectors.items():
    scores = scorer.score_target(vector, lang, "test").scores
    source_scores[lang] = scores
    print(f"  task vector {lang} on xlsum.{lang} test: ROUGE-2 "
          f"{scores['rouge2']:.2f}" + (
              f" | exact match {scores['exact_match']:.0f}%"
              if "exact_match" in scores else ""), flush=True)
  return {"training": histories, "task_vector_on_source": source_scores}


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
    for label, method in cfg.methods.items():
      grid = cfg.lambdas if methods.get(method).uses_lambda else (1.0,)
      sources = (related[target] if method.endswith("_related")
                 else [cfg.source])

      def compose(lam, method=method, target=target, sources=sources):
        tree, manifest = arithmetic.compose(
            method, task_vectors=task_vectors,
            language_vectors=language_vectors, target=target,
            sources=sources, lam=lam, space=cfg.space,
            allow_extrapolation=cfg.allow_extrapolation)
        return Adapter(tree, manifest,
                       name=methods.instance_label(method, lam, sources))

      result, by_lambda = eval_job.select_lambda_and_score(
          lambda adapter, split, target=target: scorer.score_target(
              adapter, target, split),
          compose, grid, "validation", "test", scorer.selection_score)
      record = ResultRecord.from_scored(
          method, result, split="test", sources=tuple(sources),
          selection_scores=by_lambda, selection_split="validation",
          selection_metric=cfg.selection_metric,
          base_checkpoint=scorer.base_path)
      scored.append((record, result.examples))
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
