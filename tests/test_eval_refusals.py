"""`lta eval` refuses a bad λ or composition before it loads or decodes;
the pipeline's λ sweep refuses a bad grid."""

import gin
import numpy as np
import pytest

from lta.arithmetic import compat
from lta.errors import ConfigError, LtaError
from lta.cli import eval as eval_main
from lta.adapters import adapter_io
from tests.arithmetic.random_adapters import lora_config, make_adapter

# Never read: every refusal below comes before the base model is loaded.
MISSING_BASE = "/nonexistent/base"


pytestmark = pytest.mark.usefixtures("clean_gin")


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
  d = tmp_path_factory.mktemp("vectors")
  rng = np.random.default_rng(0)
  made = {"task_en": ("xlsum", "en"), "lang_en": ("mc4_prefix_lm", "en"),
          "lang_pt": ("mc4_prefix_lm", "pt"),
          "lang_de": ("mc4_prefix_lm", "de")}
  out = {}
  for name, (task, lang) in made.items():
    adapter = make_adapter(rng, lora_config(), task, lang)
    out[name] = str(d / name)
    adapter_io.save_adapter(out[name], adapter.tree, adapter.manifest)
  return out


def _eval(tmp_path, vectors, lambdas, pt="lang_pt", **extra):
  flags = ["--gin_file=runs/eval.gin",
           f'--gin.run_eval.output_dir="{tmp_path / "eval"}"',
           f'--gin.run_eval.base_checkpoint="{MISSING_BASE}"',
           "--gin.run_eval.tasks=['xlsum.pt']",
           "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}",
           '--gin.run_eval.composition="lang_task_add_subtract"',
           "--gin.run_eval.sources=['en']",
           f"--gin.run_eval.task_vectors={{'en': '{vectors['task_en']}'}}",
           "--gin.run_eval.language_vectors="
           f"{{'en': '{vectors['lang_en']}', 'pt': '{vectors[pt]}'}}",
           f"--gin.LAMBDA={lambdas}"]
  flags += [f"--gin.run_eval.{k}={v}" for k, v in extra.items()]
  with pytest.raises(LtaError) as info:
    eval_main.main(flags)
  message, *gin_notes = str(info.value).split("\n")
  assert all("In call to configurable" in n for n in gin_notes), gin_notes
  assert not (tmp_path / "eval").exists()
  return info.value, message


@pytest.mark.parametrize("lambdas,bad", [("[0.5, 1.5]", "[1]=1.5"),
                                         ("-0.5", "=-0.5"),
                                         ("[0.3, 1e999]", "[1]=inf")])
def test_lambda_outside_unit_interval_is_refused(tmp_path, vectors, lambdas,
                                                 bad):
  error, message = _eval(tmp_path, vectors, lambdas)
  assert isinstance(error, ConfigError)
  assert message.startswith(f"run_eval.lambdas{bad}")
  assert ("outside [0, 1]" in message and
          "set run_eval.allow_extrapolation=True" in message) or (
              "must be finite" in message)


def test_extrapolation_by_name_gets_past_the_lambda_check(tmp_path, vectors):
  # The composition is refused next, still before the base is read.
  error, message = _eval(tmp_path, vectors, "[0.5, 1.5]", pt="lang_de",
                         allow_extrapolation=True)
  assert isinstance(error, compat.MislabelledAdapterError)
  assert message.endswith("is a 'de' language vector, given as 'pt'")


def test_a_misspelt_related_selection_is_refused_by_name(tmp_path, vectors):
  # The job chooses the related sources (lta.languages.related), once.
  error, message = _eval(tmp_path, vectors, "[0.5]",
                         composition='"task_only_add_related"', sources=None,
                         selection='"urial"')
  assert isinstance(error, ConfigError)
  assert message.startswith("selection='urial'; expected one of")


def test_the_pipeline_sweep_refuses_lambda_outside_unit_interval():
  from lta.pipeline import run as pipeline  # pylint: disable=g-import-not-at-top
  with pytest.raises(ConfigError) as info:
    pipeline.PipelineConfig(lambdas=(0.5, 1.5))
  assert str(info.value).startswith(
      "PipelineConfig.lambdas[1]=1.5 is outside [0, 1]")
  assert "PipelineConfig.allow_extrapolation=True" in str(info.value)
  assert pipeline.PipelineConfig(lambdas=(0.5, 1.5),
                                 allow_extrapolation=True).lambdas == (0.5, 1.5)
  with pytest.raises(ConfigError, match="must be finite"):
    pipeline.PipelineConfig(lambdas=(float("nan"),), allow_extrapolation=True)
