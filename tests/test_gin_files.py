"""Every gin file parses, with its includes, against lta's configurables."""

import pathlib

import gin
import pytest

from lta.cli import gin_registry

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin"
GIN_FILES = sorted(GIN_DIR.rglob("*.gin"))


def test_there_are_gin_files():
  assert len(GIN_FILES) >= 6


@pytest.mark.parametrize("path", GIN_FILES,
                         ids=[str(p.relative_to(GIN_DIR)) for p in GIN_FILES])
def test_gin_file_parses_and_documents_itself(path):
  text = path.read_text()
  head = text.split("\n\n", 1)[0]
  assert head.startswith("#"), f"{path} must begin with a header comment"
  assert "Required bindings" in text, f"{path} must list required bindings"
  assert "lta " in head or "lta train" in text, (
      f"{path} must state the command that runs it")
  gin_registry.register_all()
  gin.clear_config()
  try:
    gin.add_config_file_search_path(str(GIN_DIR))
    gin.parse_config_file(str(path), skip_unknown=False)
  finally:
    gin.clear_config()


def test_unknown_binding_is_an_error():
  gin_registry.register_all()
  gin.clear_config()
  with pytest.raises(ValueError, match="No configurable matching"):
    gin.parse_config("T5Confg.d_model = 3")
  with pytest.raises(ValueError):
    gin.parse_config("T5Config.d_modl = 3")
  gin.clear_config()
