"""The study's model switches: every recipe x {mT5, mBART-50, NLLB-200}.

Parses each command's gin files as `lta train` / `lta eval` do (no model is
built) and checks what the run would get: the model family and size, the
vocabulary binding, and a language code for every language the recipe
trains or scores on. Training the recipes: tests/cli/test_study_recipes.py.
"""

import gin
import pytest

from lta import errors
from lta.cli import gin_flags
from lta.cli import gin_registry
from lta.data import language_codes
from lta.models.bart.config import BartConfig
from lta.models.mt5.config import T5Config

pytestmark = pytest.mark.usefixtures("clean_gin")

RECIPES = ("study_full_finetune", "study_frozen_decoder", "study_lora",
           "study_target_lm", "study_multi_source", "study_intermediate_lm")
SWITCHES = {None: None, "study_mbart50": ("mbart", "mbart50", 250054),
            "study_nllb200": ("m2m_100", "nllb200", 256206)}
VOCAB = '--gin.lta.vocab.get_vocabulary.path="/data/spm.fairseq.model"'
TRAIN_BINDINGS = ('--gin.MODEL_DIR="/tmp/run"',
                  '--gin.INITIAL_CHECKPOINT_PATH="/data/base"')
LANGUAGE_MACROS = ("TARGET_LANGUAGES", "SOURCE_LANGUAGES", "LM_LANGUAGES")


def _configure(files, *bindings):
  gin_registry.register_all()
  gin_flags.parse_and_configure(
      [f"--gin_file=experiments/{f}.gin" for f in files if f] + list(bindings))


def _languages_used():
  """The languages the parsed run's mixture or eval tasks name."""
  text = gin.config_str()
  found = set()
  for macro in LANGUAGE_MACROS:
    if f"%{macro}" in text:
      found |= set(gin.query_parameter(f"%{macro}"))
  return found


@pytest.mark.parametrize("switch", list(SWITCHES))
@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_trains_each_model(recipe, switch):
  _configure([recipe, switch], *TRAIN_BINDINGS, *([VOCAB] if switch else []))
  config = gin.query_parameter("train.model_config").scoped_configurable_fn()
  if switch is None:
    assert isinstance(config, T5Config) and config.name == "mt5-base"
    return
  model_type, scheme, rows = SWITCHES[switch]
  assert isinstance(config, BartConfig)
  assert (config.model_type, config.vocab_size) == (model_type, rows)
  assert language_codes.scheme_for(config) == scheme
  assert gin.query_parameter("lta.vocab.get_vocabulary.path") == (
      "/data/spm.fairseq.model")
  for lang in _languages_used():
    language_codes.code(scheme, lang)  # raises for a language it lacks
  if recipe == "study_frozen_decoder":
    assert gin.query_parameter("%TRAINABLE") == "frozen_decoder"


@pytest.mark.parametrize("switch", ["study_mbart50", "study_nllb200"])
def test_a_switch_requires_the_models_vocabulary(switch):
  with pytest.raises(errors.ConfigError,
                     match="get_vocabulary.path"):
    _configure(["study_lora", switch], *TRAIN_BINDINGS)


@pytest.mark.parametrize("switch", ["study_mbart50", "study_nllb200"])
def test_zero_shot_eval_scores_languages_the_model_has(switch):
  _configure(["eval_adapter_unseen", switch], VOCAB,
             '--gin.run_eval.output_dir="/tmp/eval"',
             '--gin.run_eval.base_checkpoint="/data/model"')
  scheme = SWITCHES[switch][1]
  tasks = gin.query_parameter("run_eval.tasks")
  assert len(tasks) == (9 if switch == "study_mbart50" else 11)
  for task in tasks:
    language_codes.code(scheme, task.split(".", 1)[1])


@pytest.mark.parametrize("kind", ["prompt", "bottleneck"])
def test_mbart_and_nllb_build_the_prompt_and_bottleneck_kinds(kind):
  # The matrix's prompt / bottleneck cells: the kinds are in the bart network
  # (what they compute: tests/peft/test_added_layers_families.py).
  import jax  # pylint: disable=g-import-not-at-top
  from lta.adapters.config import AdapterConfig  # pylint: disable=g-import-not-at-top
  from lta.models import families  # pylint: disable=g-import-not-at-top
  config = BartConfig(model_type="mbart", vocab_size=64, d_model=16,
                      num_heads=2, d_ff=32, num_encoder_layers=1,
                      num_decoder_layers=1, max_position_embeddings=64)
  model = families.build_model(config, AdapterConfig(kind=kind))
  shapes = jax.eval_shape(model.init_unboxed, jax.random.PRNGKey(0))
  assert shapes["adapters"]