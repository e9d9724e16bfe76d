"""Delta space: SVD and Kronecker re-factorisation, TIES, DARE, base merge.

Tests that take the `family` fixture run on mT5 and decoder-only trees."""

import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta.adapters import deltas
from lta.arithmetic import merge_methods
from lta.adapters.tree import flatten_tree
from tests.arithmetic.random_adapters import (base_params, krona_config,
                                             lora_config, make_adapter)


def test_svd_refactorisation_at_full_rank_is_exact():
  rng = np.random.default_rng(0)
  delta = rng.normal(size=(12, 8))
  a, b = merge_methods.refactor_lora(delta, rank=8, scale=0.5,
                                     dtype=np.float64)
  np.testing.assert_allclose(0.5 * a @ b, delta, atol=1e-12)


def test_truncated_svd_is_the_best_rank_r_approximation():
  rng = np.random.default_rng(1)
  delta = rng.normal(size=(12, 8))
  a, b = merge_methods.refactor_lora(delta, rank=3, scale=2.0,
                                     dtype=np.float64)
  s = np.linalg.svd(delta, compute_uv=False)
  np.testing.assert_allclose(np.linalg.norm(2.0 * a @ b - delta),
                             np.sqrt(np.sum(s[3:]**2)), rtol=1e-10)


def test_rank_above_the_matrix_pads_with_zeros():
  delta = np.random.default_rng(2).normal(size=(4, 3))
  a, b = merge_methods.refactor_lora(delta, rank=6, scale=1.0,
                                     dtype=np.float64)
  assert a.shape == (4, 6) and b.shape == (6, 3)
  np.testing.assert_allclose(a @ b, delta, atol=1e-12)


def test_stacked_factor_path_equals_materialised_svd(family):
  rng = np.random.default_rng(3)
  adapters = [make_adapter(rng, lora_config(rank=2), language=l,
                           family=family) for l in "abc"]
  weights = [0.5, -0.25, 1.5]
  fast, cfg = merge_methods.linear_lowrank(adapters, weights, "lora", rank=6)
  slow, _ = merge_methods.refactor_tree(
      merge_methods.combine_deltas(adapters, weights, dtype=np.float64),
      adapters[0], "lora", rank=6)
  for (m, lf), (_, ls) in zip(sorted(merge_methods.modules(fast).items()),
                              sorted(merge_methods.modules(slow).items())):
    np.testing.assert_allclose(
        merge_methods.module_delta(lf, cfg, np.float64),
        merge_methods.module_delta(ls, cfg, np.float64), atol=1e-4)


def test_lora_output_keeps_the_scale_and_records_rank():
  rng = np.random.default_rng(4)
  a = make_adapter(rng, lora_config(rank=4, alpha=8.0, rslora=True))
  _, manifest = arithmetic.merge_adapters([a], [1.0], space="delta",
                                          output="lora", rank=6)
  assert manifest.config.rank == 6
  assert manifest.config.scale == pytest.approx(a.config.scale)
  assert manifest.provenance["rank"] == 6


def test_nearest_kronecker_is_exact_for_a_kronecker_product():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(3, 2)), rng.normal(size=(4, 5))
  leaves = merge_methods.nearest_kronecker(np.kron(a, b), (3, 2), (4, 5),
                                           scale=2.0, dtype=np.float64)
  np.testing.assert_allclose(2.0 * np.kron(leaves["kron_a"], leaves["kron_b"]),
                             np.kron(a, b), atol=1e-12)


def test_kron_output_of_a_sum_is_the_best_single_product(family):
  rng = np.random.default_rng(6)
  adapters = [make_adapter(rng, krona_config(), language=l, family=family)
              for l in "ab"]
  tree, manifest = arithmetic.merge_adapters(adapters, [0.5, 0.5],
                                             space="delta")
  exact = merge_methods.combine_deltas(adapters, [0.5, 0.5], dtype=np.float64)
  for m, leaves in merge_methods.modules(tree).items():
    got = merge_methods.module_delta(leaves, manifest.config, np.float64)
    a_shape = leaves["kron_a"].shape
    b_shape = leaves["kron_b"].shape
    s = np.linalg.svd(merge_methods._rearrange(exact[m], a_shape, b_shape),
                      compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(got - exact[m]),
                               np.sqrt(np.sum(s[1:]**2)), rtol=1e-4)


def test_ties_by_hand():
  d1 = np.array([[3.0, -1.0, 0.5, 2.0]])
  d2 = np.array([[1.0, 2.0, -4.0, -0.1]])
  # density 0.5 keeps the two largest magnitudes of each.
  # trimmed: d1 -> [3, 0, 0, 2], d2 -> [0, 2, -4, 0]
  # elected sign: [+, +, -, +]; every kept entry agrees with it.
  merged = merge_methods.ties([d1, d2], [0.5, 0.5], density=0.5)
  # disjoint mean over the agreeing inputs: [3, 2, -4, 2]
  np.testing.assert_allclose(merged, [[3.0, 2.0, -4.0, 2.0]])
  # Conflict: both keep entry 0 with opposite signs; mass elects +.
  merged = merge_methods.ties([np.array([5.0]), np.array([-2.0])],
                              [0.5, 0.5], density=1.0)
  np.testing.assert_allclose(merged, [5.0])


def test_ties_without_trimming_or_conflicts_is_the_weighted_sum():
  rng = np.random.default_rng(7)
  ds = [np.abs(rng.normal(size=(5, 4))) for _ in range(3)]
  w = [0.2, 0.3, 0.5]
  np.testing.assert_allclose(merge_methods.ties(ds, w, density=1.0),
                             sum(wi * d for wi, d in zip(w, ds)))


def test_dare_is_seeded_and_unbiased():
  delta = np.ones((200, 200))
  a = merge_methods.dare(delta, 0.9, np.random.default_rng(0))
  b = merge_methods.dare(delta, 0.9, np.random.default_rng(0))
  np.testing.assert_array_equal(a, b)
  kept = np.count_nonzero(a) / a.size
  assert abs(kept - 0.1) < 0.01
  np.testing.assert_allclose(a[a != 0], 10.0)
  assert abs(a.mean() - 1.0) < 0.1


def test_ties_and_dare_through_merge_adapters(family):
  rng = np.random.default_rng(8)
  adapters = [make_adapter(rng, lora_config(), language=l, family=family)
              for l in "abc"]
  w = [1 / 3] * 3
  t1, m1 = arithmetic.merge_adapters(adapters, w, space="delta",
                                     method="dare", drop_rate=0.5, seed=3,
                                     output="delta")
  t2, _ = arithmetic.merge_adapters(adapters, w, space="delta", method="dare",
                                    drop_rate=0.5, seed=3, output="delta")
  t3, _ = arithmetic.merge_adapters(adapters, w, space="delta", method="dare",
                                    drop_rate=0.5, seed=4, output="delta")
  f1, f2, f3 = flatten_tree(t1), flatten_tree(t2), flatten_tree(t3)
  assert all(np.array_equal(f1[p], f2[p]) for p in f1)
  assert not all(np.array_equal(f1[p], f3[p]) for p in f1)
  assert m1.provenance["drop_rate"] == 0.5 and m1.provenance["seed"] == 3
  _, m = arithmetic.merge_adapters(adapters, w, space="delta", method="ties",
                                   density=0.3)
  assert m.provenance["method"] == "ties" and m.provenance["density"] == 0.3
  assert m.config.kind == "lora"


@pytest.mark.parametrize("config", [lora_config(), krona_config()],
                         ids=["lora", "krona"])
def test_ties_and_dare_merge_each_modules_delta(family, config):
  """merge_adapters' TIES / DARE equal ties() / dare() on each module's dW."""
  rng = np.random.default_rng(11)
  adapters = [make_adapter(rng, config, language=l, family=family)
              for l in "abc"]
  w = [0.5, 0.3, 0.2]
  per_module = [{m: merge_methods.module_delta(leaves, config, np.float32)
                 for m, leaves in merge_methods.modules(a.tree).items()}
                for a in adapters]
  modules = sorted(per_module[0])
  ties_tree, _ = arithmetic.merge_adapters(
      adapters, w, space="delta", method="ties", density=0.3, output="delta")
  dare_tree, _ = arithmetic.merge_adapters(
      adapters, w, space="delta", method="dare", drop_rate=0.5, seed=7,
      output="delta")
  got_ties, got_dare = (merge_methods.modules(ties_tree),
                        merge_methods.modules(dare_tree))
  assert sorted(got_ties) == sorted(got_dare) == modules
  for j, m in enumerate(modules):
    ds = [d[m] for d in per_module]
    np.testing.assert_allclose(got_ties[m]["delta"],
                               merge_methods.ties(ds, w, 0.3), rtol=1e-6)
    dropped = [merge_methods.dare(d, 0.5, np.random.default_rng((7, i, j)))
               for i, d in enumerate(ds)]
    np.testing.assert_allclose(got_dare[m]["delta"],
                               sum(wi * d for wi, d in zip(w, dropped)),
                               rtol=1e-6)


def test_merge_into_base_adds_delta_to_kernels(family):
  rng = np.random.default_rng(9)
  params = base_params(rng, family)
  a = make_adapter(rng, lora_config(), family=family)
  delta, manifest = arithmetic.merge_adapters([a], [1.0], space="delta",
                                              output="delta")
  merged = deltas.merge_into_base(params, delta, manifest.config)
  for m, leaves in merge_methods.modules(a.tree).items():
    node_in, node_out = params, merged
    for k in m.split("/"):
      node_in, node_out = node_in[k], node_out[k]
    want = node_in["kernel"] + merge_methods.module_delta(leaves, a.config)
    np.testing.assert_allclose(node_out["kernel"], want, rtol=1e-5)
  bad = {"encoder": {"layers_9": {"attention": {"query": {
      "delta": np.zeros((12, 8), np.float32)}}}}}
  with pytest.raises(KeyError, match="encoder/layers_9/attention/query"):
    deltas.merge_into_base(params, bad, manifest.config)


def test_delta_space_allows_different_ranks(family):
  rng = np.random.default_rng(10)
  a = make_adapter(rng, lora_config(rank=2), language="a", family=family)
  b = make_adapter(rng, lora_config(rank=4, alpha=4.0), language="b",
                   family=family)
  tree, manifest = arithmetic.merge_adapters([a, b], [1.0, 1.0],
                                             space="delta", rank=6)
  want = merge_methods.combine_deltas([a, b], [1.0, 1.0], dtype=np.float64)
  for m, leaves in merge_methods.modules(tree).items():
    np.testing.assert_allclose(
        merge_methods.module_delta(leaves, manifest.config, np.float64),
        want[m], atol=1e-4)
