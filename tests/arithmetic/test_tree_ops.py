"""Pytree arithmetic and its algebraic properties."""

import hypothesis
from hypothesis import strategies as st
import jax.numpy as jnp
import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import merge_methods
from lta.adapters.tree import flatten_tree
from tests.arithmetic.random_adapters import (FAMILIES, first_module,
                                             krona_config, lora_config,
                                             make_adapter)

SETTINGS = hypothesis.settings(max_examples=25, deadline=None)


def _close(a, b, tol=1e-5):
  fa, fb = flatten_tree(a), flatten_tree(b)
  assert set(fa) == set(fb)
  for p in fa:
    np.testing.assert_allclose(np.asarray(fa[p]), np.asarray(fb[p]),
                               rtol=tol, atol=tol)


def test_ops_on_numpy_and_jax_leaves():
  a = {"x": {"lora_a": np.ones((2, 3), np.float32)}}
  b = {"x": {"lora_a": jnp.full((2, 3), 2.0, jnp.float32)}}
  np.testing.assert_allclose(arithmetic.add(a, b)["x"]["lora_a"], 3.0)
  np.testing.assert_allclose(arithmetic.subtract(a, b)["x"]["lora_a"], -1.0)
  np.testing.assert_allclose(arithmetic.scale(b, 0.5)["x"]["lora_a"], 1.0)
  avg = arithmetic.weighted_average([a, b], [1.0, 3.0])
  np.testing.assert_allclose(avg["x"]["lora_a"], 1.75)
  assert arithmetic.scale(a, 0.5)["x"]["lora_a"].dtype == np.float32


def test_mismatched_trees_are_refused_with_the_path():
  a = {"enc": {"q": {"lora_a": np.ones((2, 3))}}}
  with pytest.raises(ValueError, match="enc/q"):
    arithmetic.add(a, {"enc": {"q": {"lora_b": np.ones((2, 3))}}})
  with pytest.raises(ValueError, match=r"enc/q/lora_a.*\(2, 3\) vs \(3, 2\)"):
    arithmetic.add(a, {"enc": {"q": {"lora_a": np.ones((3, 2))}}})
  with pytest.raises(ValueError, match="sum to 0"):
    arithmetic.weighted_average([a, a], [1.0, -1.0])


@SETTINGS
@hypothesis.given(seed=st.integers(0, 2**16))
def test_lambda_one_returns_the_task_vector(seed):
  rng = np.random.default_rng(seed)
  task = make_adapter(rng, lora_config(), "xlsum", "en")
  lang = {l: make_adapter(rng, lora_config(), "mc4_prefix_lm", l)
          for l in ("en", "pt")}
  for name in ("lang_task_add", "lang_task_add_subtract"):
    composed = arithmetic.compose(name, task_vectors={"en": task},
                                  language_vectors=lang, target="pt",
                                  sources="en", lam=1.0)
    tree = composed.tree
    _close(tree, task.tree, 0)


@SETTINGS
@hypothesis.given(seed=st.integers(0, 2**16))
def test_x_minus_x_is_zero(seed):
  a = make_adapter(np.random.default_rng(seed), krona_config())
  diff = arithmetic.subtract(a.tree, a.tree)
  assert all(not np.any(v) for v in flatten_tree(diff).values())
  tree, _ = arithmetic.merge_adapters([a, a], [1.0, -1.0], space="delta",
                                      output="delta")
  assert all(not np.any(v) for v in flatten_tree(tree).values())


@SETTINGS
@hypothesis.given(seed=st.integers(0, 2**16), perm=st.permutations(range(4)),
                  weights=st.lists(st.floats(0.1, 3.0), min_size=4,
                                   max_size=4))
def test_averaging_is_permutation_invariant(seed, perm, weights):
  rng = np.random.default_rng(seed)
  adapters = [make_adapter(rng, lora_config(), language=f"l{i}")
              for i in range(4)]
  trees = [a.tree for a in adapters]
  ref = arithmetic.weighted_average(trees, weights)
  _close(arithmetic.weighted_average([trees[i] for i in perm],
                                     [weights[i] for i in perm]), ref)
  ref_delta, _ = arithmetic.merge_adapters(adapters, weights, space="delta",
                                           output="delta")
  perm_delta, _ = arithmetic.merge_adapters(
      [adapters[i] for i in perm], [weights[i] for i in perm], space="delta",
      output="delta")
  _close(perm_delta, ref_delta, 1e-4)


def _dw(tree, config):
  return {m: merge_methods.module_delta(l, config, np.float64)
          for m, l in merge_methods.modules(tree).items()}


@SETTINGS
@hypothesis.given(seed=st.integers(0, 2**16),
                  kind=st.sampled_from(["lora", "krona", "lokr"]),
                  family=st.sampled_from(FAMILIES))
def test_factor_and_delta_space_agree_for_a_single_adapter(seed, kind, family):
  config = {"lora": lora_config(), "krona": krona_config(),
            "lokr": krona_config(kron_b_rank=2)}[kind]
  a = make_adapter(np.random.default_rng(seed), config, family=family)
  factor, fm = arithmetic.merge_adapters([a], [1.0], space="factor")
  refactored, dm = arithmetic.merge_adapters([a], [1.0], space="delta")
  delta, _ = arithmetic.merge_adapters([a], [1.0], space="delta",
                                       output="delta")
  want = _dw(factor, fm.config)
  for m, d in _dw(refactored, dm.config).items():
    np.testing.assert_allclose(d, want[m], rtol=1e-4, atol=1e-4)
  for m, leaves in merge_methods.modules(delta).items():
    np.testing.assert_allclose(leaves["delta"], want[m], rtol=1e-4, atol=1e-4)


def test_factor_space_creates_the_documented_cross_terms(family):
  rng = np.random.default_rng(0)
  config = lora_config()
  a, b = (make_adapter(rng, config, family=family),
          make_adapter(rng, config, family=family))
  w = (0.3, 0.7)
  tree, _ = arithmetic.merge_adapters([a, b], list(w), space="factor")
  m = first_module(family)
  la, lb = merge_methods.modules(a.tree)[m], merge_methods.modules(b.tree)[m]
  s = config.scale
  A = [la["lora_a"].astype(np.float64), lb["lora_a"].astype(np.float64)]
  B = [la["lora_b"].astype(np.float64), lb["lora_b"].astype(np.float64)]
  cross = s * sum(w[i] * w[j] * A[i] @ B[j] for i in range(2)
                  for j in range(2))
  got = _dw(tree, config)[m]
  np.testing.assert_allclose(got, cross, rtol=1e-4, atol=1e-4)
  exact = s * (w[0] * A[0] @ B[0] + w[1] * A[1] @ B[1])
  assert np.abs(got - exact).max() > 0.1
