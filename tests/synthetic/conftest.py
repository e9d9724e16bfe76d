"""A tiny synthetic world, generated once per test session."""

import pytest

from lta.synthetic import world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> world.WorldInfo:
  return world.generate_world(str(tmp_path_factory.mktemp("world")),
                              world.preset("tiny"))
