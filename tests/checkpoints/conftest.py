"""The tiny mT5 fixture, loaded once per module that asks for it."""

import pytest

from lta.checkpoints import hf
from tests.checkpoints import hf_fixtures as fx


@pytest.fixture(scope="module")
def mt5():
  """(config, params) of tests/fixtures/hf/mt5_tiny."""
  return hf.load_hf_checkpoint(fx.MT5)
