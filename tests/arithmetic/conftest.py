"""The `family` fixture: a test that takes it runs on mT5 and decoder-only
adapter trees (tests/arithmetic/random_adapters.py)."""

import pytest

from tests.arithmetic import random_adapters


@pytest.fixture(params=random_adapters.FAMILIES)
def family(request):
  return request.param
