"""The companion study's recipe files train end to end, through `lta train`.

gin/experiments/study_*.gin with the tiny HF base and a tiny synthetic world
(en, ru, pt, uk) in the real XL-Sum TFDS format and mC4 shards: intermediate
LM tuning on en + pt text, then full fine-tuning from its exported model on
en summaries mixed with pt text, and full fine-tuning on en + ru summaries.
Each run registers its mixture from gin, trains 2 steps and exports a model
whose every parameter moved.
"""

import os

import jax
import numpy as np
import pytest
import seqio

from lta.checkpoints import base_model
from lta.cli import main as cli
from lta.pipeline import data as pipeline_data
from lta.synthetic import world as world_lib
from tests import doc_commands as dc

pytestmark = pytest.mark.usefixtures("clean_gin")
VOCAB = os.path.join(dc.REPO, "tests", "fixtures", "spm", "tiny_en_ru.model")


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  import lta_tasks  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("study")
  world = world_lib.generate_world(
      str(root / "world"),
      world_lib.preset("tiny").with_languages(["en", "ru", "pt", "uk"]))
  tfds = str(root / "tfds")
  lta_tasks.xlsum_builder.prepare(["en", "ru", "pt"], data_dir=tfds,
                                  manual_dir=world.xlsum_dir)
  pipeline_data.index_mc4(["en", "pt"], world.mc4_dir, tfds, rebuild=True)
  return tfds


def _train(gin_file, model_dir, tfds, *bindings, base=dc.TINY_BASE):
  argv = ["train", f"--gin_file=experiments/{gin_file}",
          f"--gin_file={dc.TINY_GIN}", f"--tfds_data_dir={tfds}",
          f'--gin.MODEL_DIR="{model_dir}"',
          f'--gin.INITIAL_CHECKPOINT_PATH="{base}"',
          "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=8",
          f"--gin.TASK_FEATURE_LENGTHS={dc.TINY_LENGTHS}",
          f'--gin.lta.vocab.get_vocabulary.path="{VOCAB}"',
          "--gin.train.eval_period=0", *bindings]
  assert cli.main(argv) == 0, argv
  return os.path.join(model_dir, "model")


def _rates(name):
  mixture = seqio.get_mixture_or_task(name)
  return {t.name: mixture.get_rate(t) for t in mixture.tasks}


def _assert_every_parameter_moved(before_path, after_path):
  _, before = base_model.load_base_model(before_path)
  _, after = base_model.load_base_model(after_path)
  flat = lambda tree: {jax.tree_util.keystr(k): np.asarray(v) for k, v in
                       jax.tree_util.tree_flatten_with_path(tree)[0]}
  before, after = flat(before), flat(after)
  assert before.keys() == after.keys()
  unchanged = [k for k in before if np.array_equal(before[k], after[k])]
  assert not unchanged, unchanged


def test_intermediate_lm_then_task_with_target_text(tfds_dir, tmp_path,
                                                    capsys):
  stage1 = _train("study_intermediate_lm.gin", tmp_path / "lm", tfds_dir,
                  "--gin.LM_LANGUAGES=['en', 'pt']")
  assert _rates("mc4_prefix_lm_mix.en_pt") == {
      "mc4_prefix_lm.en": 1.0, "mc4_prefix_lm.pt": 1.0}
  _assert_every_parameter_moved(dc.TINY_BASE, stage1)
  # Stage 2 starts from stage 1's model: the intermediate-tuning chain.
  stage2 = _train("study_target_lm.gin", tmp_path / "task", tfds_dir,
                  "--gin.TARGET_LANGUAGES=['pt']", base=stage1)
  assert _rates("xlsum_target_lm.en.pt") == {"xlsum.en": 0.5,
                                             "mc4_prefix_lm.pt": 0.5}
  _assert_every_parameter_moved(stage1, stage2)
  out = capsys.readouterr().out
  assert "on mc4_prefix_lm_mix.en_pt" in out
  assert "on xlsum_target_lm.en.pt" in out


def test_multi_source_trains_on_every_source(tfds_dir, tmp_path, capsys):
  model = _train("study_multi_source.gin", tmp_path / "multi", tfds_dir,
                 "--gin.SOURCE_LANGUAGES=['en', 'ru']")
  assert set(_rates("xlsum_multi.en_ru")) == {"xlsum.en", "xlsum.ru"}
  _assert_every_parameter_moved(dc.TINY_BASE, model)
  assert "on xlsum_multi.en_ru" in capsys.readouterr().out
