"""Fixtures shared by the model tests."""

import jax
import pytest


@pytest.fixture(scope="module")
def unoptimised_compiles():
  """The same jitted code, compiled without XLA's optimisation passes: on
  CPU the tiny decoder-only models then compile in about half the time,
  which the default tier's budget needs. Numerics stay within the parity
  tolerances (checked with and without)."""
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)
