"""Kronecker adapters whose modules have different factors, as PEFT makes them.

The fixtures (tests/fixtures/make_lokr_fixtures.py) are PEFT LoKr adapters
on a tiny mT5 with non-square attention: q/k/v get lta factors (4, 3), o
(3, 4), the MLP (4, 5) / (5, 4).
"""

import dataclasses
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.adapters import adapter_io
from lta.checkpoints import hf_peft
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest
from lta.adapters.deltas import adapter_deltas, module_delta
from lta.adapters.tree import flatten_tree, unflatten_tree
from tests.checkpoints import hf_fixtures as fx

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fixtures", "hf_lokr")
BASE = os.path.join(FIXTURES, "mt5_nonsquare")
ADAPTERS = ("lokr_split", "lokr_whole_f6")
TOL = 1e-4


@pytest.fixture(scope="module")
def base():
  return hf.load_hf_checkpoint(BASE)


def _import(name, config):
  return hf_peft.import_peft_adapter(os.path.join(FIXTURES, name), config)


def _reference(name):
  return dict(np.load(os.path.join(FIXTURES, f"{name}.reference.npz")))


def _factors(tree):
  return {p[:-len("/kron_a")]: v.shape
          for p, v in flatten_tree(tree).items() if p.endswith("/kron_a")}


def test_peft_factors_differ_per_module_and_lta_keeps_them(base):
  adapter, tree = _import("lokr_split", base[0])
  assert (adapter.kron_factor_rule, adapter.kron_decompose_factor,
          adapter.kron_b_rank) == ("peft", -1, 2)
  factors = _factors(tree)
  assert factors["encoder/layers_0/attention/query"] == (4, 3)
  assert factors["encoder/layers_0/attention/out"] == (3, 4)
  assert factors["decoder/layers_1/mlp/wi_0"] == (4, 5)
  assert factors["decoder/layers_1/mlp/wo"] == (5, 4)
  f6, tree6 = _import("lokr_whole_f6", base[0])
  assert (f6.kron_decompose_factor, f6.kron_b_rank) == (6, None)
  assert _factors(tree6)["encoder/layers_0/attention/query"] == (4, 6)
  assert _factors(tree6)["encoder/layers_0/attention/out"] == (6, 4)


@pytest.mark.parametrize("name", ADAPTERS)
def test_imported_logits_and_deltas_equal_peft(base, name):
  config, params = base
  adapter, tree = _import(name, config)
  ref = _reference(name)
  got = fx.lta_logits(config, params, ref["encoder_input_ids"],
                      ref["decoder_input_ids"], adapter, tree)
  np.testing.assert_allclose(got, ref["logits"], atol=TOL, rtol=0)
  assert np.abs(ref["logits"] - ref["base_logits"]).max() > 0.5
  deltas = adapter_deltas(tree, adapter)
  assert fx.assert_deltas_match(deltas, ref) == 14


@pytest.mark.parametrize("name", ADAPTERS)
def test_export_writes_peft_files_and_round_trips(tmp_path, base, name):
  config, params = base
  adapter, tree = _import(name, config)
  manifest = AdapterManifest.for_tree(
      tree, adapter, base_model_name="mt5_nonsquare", task="xlsum",
      language="en",
      base_model_fingerprint=fingerprint.base_model_fingerprint(config,
                                                                params))
  hf_peft.export_adapter(Adapter(tree, manifest), config, str(tmp_path))
  ours = load_file(str(tmp_path / hf_peft.WEIGHTS_FILE))
  theirs = load_file(os.path.join(FIXTURES, name, hf_peft.WEIGHTS_FILE))
  assert sorted(ours) == sorted(theirs)
  for k in theirs:
    np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
  with open(tmp_path / hf_peft.CONFIG_FILE) as f:
    ours_cfg = json.load(f)
  with open(os.path.join(FIXTURES, name, hf_peft.CONFIG_FILE)) as f:
    theirs_cfg = json.load(f)
  for field in ("r", "alpha", "decompose_factor", "decompose_both"):
    assert ours_cfg[field] == theirs_cfg[field], field
  assert ours_cfg["base_model_name_or_path"] == "mt5_nonsquare"
  assert ours_cfg["task_type"] == "SEQ_2_SEQ_LM"
  adapter2, tree2 = hf_peft.import_peft_adapter(str(tmp_path), config)
  assert adapter2 == adapter
  for path, value in flatten_tree(tree).items():
    np.testing.assert_array_equal(flatten_tree(tree2)[path], value)


def _adapter(tree, config, params, t5_config, name):
  manifest = AdapterManifest.for_tree(
      tree, config, base_model_name="mt5_nonsquare", task="xlsum",
      language=name,
      base_model_fingerprint=fingerprint.base_model_fingerprint(t5_config,
                                                                params))
  return Adapter(tree, manifest, name)


@pytest.fixture(scope="module")
def two_adapters(base):
  """The peft adapter, and one that differs in its B_down factors only."""
  config, params = base
  adapter, tree = _import("lokr_split", config)
  rng = np.random.default_rng(0)
  other = {p: (rng.normal(0, 0.2, v.shape).astype(np.float32)
               if p.endswith("/kron_b_down") else v)
           for p, v in flatten_tree(tree).items()}
  return (_adapter(tree, adapter, params, config, "en"),
          _adapter(unflatten_tree(other), adapter, params, config, "pt"))


def test_delta_space_merges_per_module_factors_exactly(two_adapters):
  a, b = two_adapters
  w = [0.3, 0.7]
  da, db = adapter_deltas(a.tree, a.config), adapter_deltas(b.tree, b.config)
  delta_tree, _ = arithmetic.merge_adapters([a, b], w, space="delta",
                                            output="delta")
  for module, leaves in flatten_tree(delta_tree).items():
    kernel = module[:-len("/delta")] + "/kernel"
    np.testing.assert_allclose(leaves, w[0] * da[kernel] + w[1] * db[kernel],
                               atol=1e-6)
  # Same A and B_up in both: the sum is a Kronecker product with a rank-2 B,
  # refactored exactly, and each module keeps its own factor shape.
  kron_tree, manifest = arithmetic.merge_adapters([a, b], w, space="delta")
  assert _factors(kron_tree) == _factors(a.tree)
  got = adapter_deltas(kron_tree, manifest.config)
  for kernel in da:
    np.testing.assert_allclose(got[kernel], w[0] * da[kernel] +
                               w[1] * db[kernel], atol=1e-5)


def test_factor_space_merges_per_module_factors(two_adapters):
  a, b = two_adapters
  tree, manifest = arithmetic.merge_adapters([a, b], [0.5, 0.5])
  assert _factors(tree) == _factors(a.tree)
  fa, fb = flatten_tree(a.tree), flatten_tree(b.tree)
  module = "decoder/layers_1/encoder_decoder_attention/out"
  mixed = {leaf: 0.5 * fa[f"{module}/{leaf}"] + 0.5 * fb[f"{module}/{leaf}"]
           for leaf in ("kron_a", "kron_b_down", "kron_b_up")}
  np.testing.assert_allclose(
      adapter_deltas(tree, manifest.config)[f"{module}/kernel"],
      module_delta(mixed, a.config.scale), atol=1e-6)


def test_compat_names_the_module_whose_factors_differ(base, two_adapters):
  config, params = base
  a, _ = two_adapters
  fixed = AdapterConfig(kind="krona", rank=2, alpha=3.0, kron_factors=(2, 2),
                        kron_b_rank=2, targets=a.config.targets)
  rng = np.random.default_rng(1)
  flat = {}
  for kernel, (fan_in, fan_out) in compat.delta_shapes(a).items():
    for leaf, shape in fixed.leaf_shapes(fan_in, fan_out).items():
      flat[f"{kernel}/{leaf}"] = rng.normal(size=shape).astype(np.float32)
  b = _adapter(unflatten_tree(flat), fixed, params, config, "pt")
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match=r"Kronecker factors \(m, n\) of "
                     r"decoder/layers_0/encoder_decoder_attention/key: "
                     r"\(4, 3\) vs \(2, 2\)"):
    arithmetic.merge_adapters([a, b], [0.5, 0.5], space="delta")


def test_saved_manifest_keeps_the_factor_rule(tmp_path, two_adapters):
  a, _ = two_adapters
  adapter_io.save_adapter(str(tmp_path), a.tree, a.manifest)
  tree, manifest = adapter_io.load_adapter(str(tmp_path))
  assert manifest.config == a.config
  assert manifest.adapter["kron_factor_rule"] == "peft"
  assert _factors(tree) == _factors(a.tree)


def test_fixed_factor_config_keeps_the_original_fields():
  """Older lta reads a fixed-factor config: no new field is written."""
  original = {"kind", "rank", "alpha", "rslora", "dropout_rate", "targets",
              "kron_factors", "kron_b_rank", "dtype"}
  assert set(AdapterConfig(kind="krona").to_dict()) == original
  per_module = dataclasses.replace(AdapterConfig(kind="krona"),
                                   kron_factor_rule="peft")
  assert set(per_module.to_dict()) == original | {"kron_factor_rule",
                                                  "kron_decompose_factor"}
  assert AdapterConfig.from_dict(per_module.to_dict()) == per_module
