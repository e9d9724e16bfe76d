"""Stage 1 of the main job (lta.pipeline.run): data and vocabulary.

Writes (or finds, when its stage record matches) under the run's shared
directory: a synthetic world unless XLSum and mC4 files are given, a
SentencePiece model unless one is given, and a TFDS data dir with XLSum and
the index of the mC4 shards (`lta_tasks.mc4_index`, as `lta prepare-data`
writes it) for every language. The later stages read the data from that
TFDS dir and get the vocabulary from `Data.vocab_path`: nothing here
changes gin's configuration.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import seqio

from lta import errors
from lta.eval import langid
from lta.pipeline import stages
from lta.data import vocab
from lta.models import families

if TYPE_CHECKING:
  from lta.pipeline.run import PipelineConfig


@dataclasses.dataclass
class Data:
  xlsum_manual_dir: str
  mc4_local_dir: str
  vocab_path: str
  tfds_dir: str
  world: Any = None  # lta.synthetic WorldInfo when the data is synthetic
  digest: str = ""  # of the data stage's spec: trained models depend on it

  def fidelity_fn(self) -> Optional[Callable[[Sequence[str], str], float]]:
    """Synthetic languages need the world's own language identifier."""
    if self.world is None:
      return None
    from lta.synthetic import lexicon_lid  # pylint: disable=g-import-not-at-top
    return functools.partial(langid.language_fidelity,
                             identifier=lexicon_lid.LexiconIndex(self.world))


def world_config(cfg: PipelineConfig):
  """The synthetic world of `cfg`: a preset, its seed and languages."""
  from lta.synthetic import world as world_lib  # only for synthetic data
  config = dataclasses.replace(world_lib.preset(cfg.world_preset),
                               seed=cfg.world_seed)
  if cfg.world_languages:
    config = config.with_languages(cfg.world_languages)
  return config


def data_stage(cfg: PipelineConfig, model_config: families.ModelConfig) -> stages.Stage:
  """What stage 1 writes under `cfg.shared_dir`, and the config it uses."""
  shared = cfg.shared_dir
  spec = {"languages": cfg.languages, "xlsum_manual_dir": cfg.xlsum_manual_dir,
          "mc4_local_dir": cfg.mc4_local_dir, "vocab_path": cfg.vocab_path}
  outputs = [os.path.join(shared, "tfds")]
  if cfg.xlsum_manual_dir is None or cfg.mc4_local_dir is None:
    spec["world"] = world_config(cfg).to_json()
    outputs.append(os.path.join(shared, "world"))
  if cfg.vocab_path is None:
    spec["vocab_size"] = model_config.vocab_size
    outputs.append(os.path.join(shared, "spm"))
  return stages.Stage("data and vocabulary",
                      os.path.join(shared, "data_stage.json"), spec, outputs)


def prepare_data(cfg: PipelineConfig, model_config: families.ModelConfig) -> Data:
  """Writes or finds the data, trains the vocabulary, builds TFDS XLSum."""
  from lta.synthetic import world as world_lib  # only for synthetic data
  from lta_tasks import xlsum_builder  # pylint: disable=g-import-not-at-top

  stage = data_stage(cfg, model_config)
  cached = stages.check(stage) == stages.CACHED
  if cached:
    print(f"{stages.SKIPPED} ({cfg.shared_dir})", flush=True)
  else:
    stages.start(stage)
  world = None
  xlsum_dir, mc4_dir = cfg.xlsum_manual_dir, cfg.mc4_local_dir
  if "world" in stage.spec:
    world_dir = os.path.join(cfg.shared_dir, "world")
    world = (world_lib.load_world(world_dir) if cached else
             world_lib.generate_world(world_dir, world_config(cfg),
                                      overwrite=True))
    xlsum_dir = xlsum_dir or world.xlsum_dir
    mc4_dir = mc4_dir or world.mc4_dir
  vocab_path = cfg.vocab_path
  if vocab_path is None:
    if world is None:
      raise errors.ConfigError(
          "PipelineConfig.vocab_path is required with real data (the mT5 "
          "SentencePiece model).")
    vocab_path = os.path.join(cfg.shared_dir, "spm", "spm.model")
    if not cached:
      os.makedirs(os.path.dirname(vocab_path), exist_ok=True)
      with open(world.corpus_path, encoding="utf-8") as f:
        texts = f.read().splitlines()
      vocab.train_tiny_sentencepiece(
          texts, vocab_path[:-len(".model")],
          vocab_size=model_config.vocab_size, character_coverage=1.0)
  tfds_dir = os.path.join(cfg.shared_dir, "tfds")
  if not cached:
    xlsum_builder.prepare(cfg.languages, data_dir=tfds_dir,
                          manual_dir=xlsum_dir)
  index_mc4(cfg.languages, mc4_dir, tfds_dir, rebuild=not cached)
  if not cached:
    stages.finish(stage)
  seqio.set_tfds_data_dir_override(tfds_dir)
  print(f"XLSum files: {xlsum_dir}\nmC4 files: {mc4_dir}\n"
        f"vocabulary: {vocab_path}", flush=True)
  return Data(xlsum_dir, mc4_dir, vocab_path, tfds_dir, world, stage.digest)


def index_mc4(languages: Sequence[str], mc4_dir: str, tfds_dir: str,
              rebuild: bool) -> None:
  """Indexes the mC4 shards of `languages` in `tfds_dir`, where the tasks
  look for them; a kept index is rebuilt if it is missing (a data dir made
  by an older lta) or lists another directory (the run dir moved)."""
  # pylint: disable=g-import-not-at-top
  from lta_tasks import jsonl_records, mc4_index
  for lang in languages:
    index = None if rebuild else mc4_index.find(lang, tfds_dir)
    where = mc4_dir if "://" in mc4_dir else os.path.abspath(mc4_dir)
    if index is None or index.mc4_dir != where:
      mc4_index.build(mc4_dir, lang, tfds_dir,
                      jsonl_records.skip_malformed_records())
