"""Every incompatible input is refused with a message naming both inputs,
on mT5 and decoder-only adapter trees alike (the `family` fixture)."""

import dataclasses

import numpy as np
import pytest

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta.adapters.manifest import Adapter, AdapterManifest
from tests.arithmetic.random_adapters import (MODULES, krona_config,
                                             lora_config, make_adapter, node)

IncompatibleAdaptersError = compat.IncompatibleAdaptersError


def _pair(config_a=None, config_b=None, family="mt5", **kw_b):
  rng = np.random.default_rng(0)
  a = make_adapter(rng, config_a or lora_config(), name="task[en]",
                   family=family)
  b = make_adapter(rng, config_b or lora_config(), name="lang[pt]",
                   family=family, **kw_b)
  return a, b


def _drop_last_module(tree, family):
  """Deletes the family's last adapted module from `tree`; its path."""
  module = list(MODULES[family])[-1]
  parent, name = module.rsplit("/", 1)
  del node(tree, parent)[name]
  return module


def _refused(a, b, pattern, space="factor"):
  with pytest.raises(IncompatibleAdaptersError, match=pattern) as e:
    arithmetic.merge_adapters([a, b], [0.5, 0.5], space=space)
  assert "task[en]" in str(e.value) or "lang[pt]" in str(e.value)
  return str(e.value)


def test_different_base_models(family):
  msg = _refused(*_pair(base="sha256:other", family=family),
                 "base model fingerprint")
  assert "task[en] and lang[pt]" in msg and "sha256:other" in msg


def test_different_adapter_types(family):
  _refused(*_pair(config_b=krona_config(), family=family),
           "adapter type: 'lora' vs 'krona'")


def test_different_ranks_in_factor_space(family):
  _refused(*_pair(config_b=lora_config(rank=2, alpha=4.0), family=family),
           "rank: 4 vs 2")


def test_different_scales_in_factor_space(family):
  _refused(*_pair(config_b=lora_config(alpha=16.0), family=family), "scale")


def test_different_kronecker_shapes(family):
  other = dataclasses.replace(krona_config(), kron_factors=(2, 4))
  _refused(*_pair(krona_config(), other, family),
           r"Kronecker factors.*\(4, 2\) vs \(2, 4\)", space="delta")
  _refused(*_pair(krona_config(), krona_config(kron_b_rank=2), family),
           "Kronecker B rank: None vs 2")


def test_different_targets(family):
  # Matches every kernel of the tree too, but is another adapter setup.
  other = lora_config(targets=r"(encoder|decoder)/.*")
  _refused(*_pair(config_b=other, family=family), "targets")


def test_different_dtypes(family):
  _refused(*_pair(dtype=np.float16, family=family),
           "dtype: 'float32' vs 'float16'")


def test_partial_tree(family):
  a, b = _pair(family=family)
  module = list(MODULES[family])[0]
  del node(b.tree, module)["lora_b"]
  _refused(a, b, f"lang\\[pt\\]: partial or foreign adapter at '{module}'")


def test_missing_module(family):
  a, b = _pair(family=family)
  _drop_last_module(b.tree, family)
  _refused(a, b, "lang\\[pt\\]: tree is missing 2 leaves its manifest lists")


def test_trees_adapting_different_kernels(family):
  rng = np.random.default_rng(1)
  a = make_adapter(rng, lora_config(), name="task[en]", family=family)
  b = make_adapter(rng, lora_config(), name="lang[pt]", family=family)
  dropped = _drop_last_module(b.tree, family)
  shapes = {p: s for p, s in b.manifest.shapes.items()
            if not p.startswith(dropped + "/")}
  b = Adapter(b.tree, dataclasses.replace(b.manifest, shapes=shapes),
              b.name)
  _refused(a, b, "adapt different parameters")
  _refused(a, b, "adapt different kernels", space="delta")


def test_nan_and_inf(family):
  a, b = _pair(family=family)
  out = list(MODULES[family])[1]  # an attention output projection
  node(b.tree, out)["lora_a"][0, 0] = np.nan
  node(b.tree, out)["lora_a"][0, 1] = np.inf
  _refused(a, b, rf"lang\[pt\]: {out}/lora_a holds "
           r"non-finite values \(1 NaN, 1 Inf\)")


def test_shape_disagreeing_with_manifest(family):
  a, b = _pair(family=family)
  node(b.tree, list(MODULES[family])[1])["lora_a"] = np.zeros((8, 3),
                                                             np.float32)
  _refused(a, b, r"has shape \[8, 3\], manifest says \[8, 4\]")


def test_empty_inputs():
  with pytest.raises(ValueError, match="as many weights as adapters"):
    arithmetic.merge_adapters([], [])
  a, _ = _pair()
  empty = Adapter({}, dataclasses.replace(a.manifest, shapes={}), "empty")
  with pytest.raises(IncompatibleAdaptersError, match="empty: adapter tree "
                     "is empty"):
    compat.check_compatible([empty])


def test_nothing_is_broadcast_by_tree_ops():
  with pytest.raises(ValueError, match="shape"):
    arithmetic.add({"a": np.ones((4, 1))}, {"a": np.ones((4, 3))})
