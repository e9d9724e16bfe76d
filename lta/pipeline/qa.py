"""Table 4 in miniature: a QA task vector composed like the XL-Sum one.

Runs after `lta.pipeline.run.run_pipeline` on the same config. It writes
the synthetic world's QA files (lta.synthetic.qa) and their TFDS data once
per data dir, trains the QA task vector in the source (task_qa_<source>,
its own stage), and scores task only, add, and add and subtract with the
run's language vectors on every target: λ chosen on validation F1, test
scores, the decoded test examples kept for paired statistics. The base and
the language vectors are the run's, found cached (lta.pipeline.stages).

  results/qa.json   {"task_vector_on_source": {source: scores},
                     "targets": {target: cell}} (lta.pipeline.rescoring's
                     cell format, methods METHODS)
"""

from __future__ import annotations

import dataclasses
import os

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.models import families
from lta.pipeline import rescoring
from lta.pipeline import run as pipeline
from lta.pipeline import stages
from lta.pipeline.data import Data

QA_FILE = "qa.json"
METHODS = pipeline.METHODS  # Table 4's rows: task only, add, add-subtract
SELECTION_METRIC = "f1"  # SQuAD F1, TyDi QA's metric in the paper
# By whether the base is decoder-only (tasks/synthetic_qa.py).
TASKS = {False: "synthetic_qa.{}", True: "synthetic_qa_prompt.{}"}


def qa_task(model_config: families.ModelConfig, lang: str) -> str:
  return TASKS[families.is_decoder_only(model_config)].format(lang)


class QaScorer(pipeline.Scorer):
  """The pipeline's scorer, on the QA task of each language."""

  def task(self, lang: str) -> str:
    return qa_task(self.config, lang)


def prepare_qa_data(cfg: pipeline.PipelineConfig, data: Data) -> None:
  """The world's QA files and TFDS data, once per shared data dir."""
  # pylint: disable=g-import-not-at-top  (synthetic worlds only)
  from lta.synthetic import qa as synthetic_qa
  from lta_tasks import synthetic_qa as qa_tasks
  if data.world is None:
    raise errors.ConfigError(
        "MiniatureConfig.qa needs the synthetic world (the QA task is "
        "generated from it); PipelineConfig.xlsum_manual_dir and "
        "mc4_local_dir are set")
  qa_dir = os.path.join(cfg.shared_dir, "qa")
  stage = stages.Stage(
      "QA data", os.path.join(cfg.shared_dir, "qa_stage.json"),
      {"data": data.digest, "format": synthetic_qa.FORMAT_VERSION,
       "languages": list(cfg.languages)}, [qa_dir])
  if stages.check(stage) == stages.CACHED:
    pipeline.say(f"QA data: {stages.SKIPPED}")
    return
  stages.start(stage)
  counts = synthetic_qa.write_qa_files(data.world, qa_dir)
  qa_tasks.prepare(cfg.languages, data.tfds_dir, qa_dir, overwrite=True)
  pipeline.say(f"QA data: {sum(counts.values())} questions in {qa_dir}")
  stages.finish(stage)


def score_qa(cfg: pipeline.PipelineConfig,
             model_config: families.ModelConfig,
             adapter: AdapterConfig) -> str:
  """Trains (or finds) the QA task vector and scores METHODS; the path of
  results/qa.json."""
  pipeline.banner(f"Table 4: the QA task vector ({cfg.source}), composed")
  parts = rescoring.load_parts(
      cfg, model_config, adapter,
      languages=(cfg.source,) + tuple(cfg.targets))
  prepare_qa_data(cfg, parts.data)
  vector, _ = pipeline.train_adapter(
      cfg, f"task_qa_{cfg.source}", qa_task(model_config, cfg.source),
      "task_steps", parts.base, model_config, adapter, parts.data)
  qa_cfg = dataclasses.replace(cfg, selection_metric=SELECTION_METRIC)
  scorer = QaScorer(qa_cfg, parts.base.path, parts.data)
  on_source = scorer.score(vector, scorer.task(cfg.source), "test").scores
  pipeline.say(f"QA task vector {cfg.source} on its test set: F1 "
               f"{on_source['f1']:.1f}, exact match {on_source['em']:.1f}")
  qa_parts = rescoring.Parts(scorer, {cfg.source: vector},
                             parts.language_vectors, parts.base, parts.data)
  return rescoring.write_result(cfg, QA_FILE, {
      "task_vector_on_source": {cfg.source: on_source},
      "targets": {t: rescoring.score_cell(qa_cfg, qa_parts, cfg.source, t,
                                          METHODS) for t in cfg.targets}})
