"""The larger miniature's gin options build on its tiny model."""

import pathlib

import gin
import jax
import pytest

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.cli import gin_registry
from lta.models import families
from lta.pipeline import run

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin"
OPTIONS = ("miniature_krona.gin", "miniature_qa.gin", "miniature_related.gin")


@pytest.fixture
def parsed():
  def parse(option):
    gin_registry.register_all()
    gin.clear_config()
    gin.add_config_file_search_path(str(GIN_DIR))
    gin.parse_config_files_and_bindings(
        [str(GIN_DIR / "experiments" / "miniature_large.gin"),
         str(GIN_DIR / "experiments" / option)], [], skip_unknown=False)
  yield parse
  gin.clear_config()


@pytest.mark.parametrize("option", OPTIONS)
def test_option_builds_the_adapted_tiny_model(parsed, option):
  parsed(option)
  model = families.build_model(run.base_model_config(), AdapterConfig())
  shapes = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  assert shapes["params"]


def test_kronecker_option_adapts_every_attention_kernel(parsed):
  parsed("miniature_krona.gin")
  adapter = AdapterConfig()
  assert adapter.kind == "krona"
  model = families.build_model(run.base_model_config(), adapter)
  shapes = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  leaves = jax.tree_util.tree_leaves_with_path(shapes)
  adapted = {jax.tree_util.keystr(p) for p, _ in leaves if "adapters" in
             jax.tree_util.keystr(p)}
  assert adapted, "no adapter parameters"
  assert any("out" in p for p in adapted) and any("query" in p
                                                   for p in adapted)


def test_paper_factors_are_refused_on_the_tiny_model_with_the_kernel(parsed):
  parsed("miniature_krona.gin")
  with gin.unlock_config():
    gin.bind_parameter("AdapterConfig.kron_factors", (32, 16))
  model = families.build_model(run.base_model_config(), AdapterConfig())
  with pytest.raises(errors.ConfigError, match=r"do not fit .*attention.*m must divide"):
    jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
