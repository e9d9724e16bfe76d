import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lta.checkpoints import hf
from lta.checkpoints import layout
from lta.adapters import config as adapter_lib
from lta.checkpoints import hf_peft
from lta.adapters.config import AdapterConfig
from lta.adapters.deltas import adapter_deltas
from lta.adapters.tree import flatten_tree, unflatten_tree
from tests.checkpoints import hf_fixtures as fx

TOL = 1e-4
PEFT_FIXTURES = ("lora_tiny", "lokr_tiny", "lokr_full_tiny")


@pytest.fixture(scope="module")
def mt5():
  return hf.load_hf_checkpoint(fx.MT5)


def _dir(name):
  return os.path.join(fx.FIXTURES, name)


def test_imported_configs():
  lora, _ = hf_peft.import_peft_adapter(_dir("lora_tiny"))
  assert (lora.kind, lora.rank, lora.alpha, lora.rslora) == ("lora", 4, 8.0,
                                                             False)
  assert lora.targets == adapter_lib.ATTENTION_TARGETS
  lokr, tree = hf_peft.import_peft_adapter(_dir("lokr_tiny"))
  assert (lokr.kind, lokr.rank, lokr.kron_b_rank) == ("krona", 2, 2)
  # peft factorizes each module's dimensions: lta keeps its rule.
  assert (lokr.kron_factor_rule, lokr.kron_decompose_factor) == ("peft", -1)
  q = tree["encoder"]["layers_0"]["attention"]["query"]
  assert q["kron_a"].shape == (4, 4)  # (in/8, out/6), peft's factorization
  assert q["kron_b_down"].shape == (8, 2) and q["kron_b_up"].shape == (2, 6)
  full, tree = hf_peft.import_peft_adapter(_dir("lokr_full_tiny"))
  assert full.kron_b_rank is None
  assert tree["decoder"]["layers_0"]["self_attention"]["out"]["kron_b"].shape \
      == (6, 8)


@pytest.mark.parametrize("name", PEFT_FIXTURES)
def test_merged_delta_equals_peft_delta(mt5, name):
  adapter, tree = hf_peft.import_peft_adapter(_dir(name), mt5[0])
  deltas = adapter_deltas(tree, adapter)
  assert len(deltas) == 4 * (2 + 3 + 3)
  ref = fx.reference(name)
  assert fx.assert_deltas_match(deltas, ref) == 12


@pytest.mark.parametrize("name", PEFT_FIXTURES)
def test_logits_with_imported_adapter_equal_peft(mt5, name):
  config, params = mt5
  adapter, tree = hf_peft.import_peft_adapter(_dir(name), config)
  ref = fx.reference(name)
  enc, dec = ref["encoder_input_ids"], ref["decoder_input_ids"]
  got = fx.lta_logits(config, params, enc, dec, adapter, tree)
  np.testing.assert_allclose(got, ref["logits"], atol=TOL, rtol=0)
  base = fx.reference("mt5_tiny")["logits"]
  assert np.abs(ref["logits"] - base).max() > 1.0  # the adapter matters


def _assert_same_tree(a, b):
  fa, fb = flatten_tree(a), flatten_tree(b)
  assert sorted(fa) == sorted(fb)
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


@pytest.mark.parametrize("name", PEFT_FIXTURES)
def test_export_matches_peft_files_and_round_trips(tmp_path, mt5, name):
  adapter, tree = hf_peft.import_peft_adapter(_dir(name), mt5[0])
  hf_peft.export_peft_adapter(tree, adapter, mt5[0], str(tmp_path),
                              base_model_name_or_path="mt5_tiny")
  # The same tensor names, shapes and values peft's save_pretrained wrote.
  ours = load_file(str(tmp_path / hf_peft.WEIGHTS_FILE))
  theirs = load_file(os.path.join(_dir(name), hf_peft.WEIGHTS_FILE))
  assert sorted(ours) == sorted(theirs)
  for k in theirs:
    np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
  with open(tmp_path / hf_peft.CONFIG_FILE) as f:
    cfg = json.load(f)
  assert sorted(cfg["target_modules"]) == ["k", "o", "q", "v"]
  assert cfg["base_model_name_or_path"] == "mt5_tiny"
  assert cfg["task_type"] == "SEQ_2_SEQ_LM"  # peft: PeftModelForSeq2SeqLM
  adapter2, tree2 = hf_peft.import_peft_adapter(str(tmp_path), mt5[0])
  assert adapter2 == adapter
  _assert_same_tree(tree, tree2)


def _random_tree(config, adapter, seed):
  """An lta adapter tree for every targeted kernel, all leaves random."""
  rng = np.random.default_rng(seed)
  flat = {}
  for path, shape in layout.param_shapes(config).items():
    if not (path.endswith("/kernel") and adapter.matches(path)):
      continue
    fan_in, fan_out = shape
    module = path[:-len("/kernel")]
    for leaf, shape in adapter.leaf_shapes(fan_in, fan_out).items():
      flat[f"{module}/{leaf}"] = rng.normal(size=shape).astype(np.float32)
  return unflatten_tree(flat)


@pytest.mark.parametrize("adapter", [
    AdapterConfig(kind="lora", rank=2, alpha=3.0, rslora=True,
                  targets=r"decoder/layers_\d+/self_attention/(query|value)"
                          r"/kernel"),
    AdapterConfig(kind="lora", rank=2, alpha=3.0,
                  targets=r"encoder/layers_1/mlp/(wi_0|wo)/kernel"),
    AdapterConfig(kind="krona", rank=3, alpha=2.0, kron_factors=(4, 4)),
    AdapterConfig(kind="krona", rank=2, alpha=2.0, kron_factors=(4, 4),
                  kron_b_rank=2),
], ids=["lora-subset", "lora-one-layer-mlp", "krona", "lokr"])
def test_export_import_round_trip_keeps_delta(tmp_path, mt5, adapter):
  config = mt5[0]
  tree = _random_tree(config, adapter, 0)
  hf_peft.export_peft_adapter(tree, adapter, config, str(tmp_path))
  with open(tmp_path / hf_peft.CONFIG_FILE) as f:
    assert json.load(f)["base_model_name_or_path"] == config.name
  adapter2, tree2 = hf_peft.import_peft_adapter(str(tmp_path), config)
  d1, d2 = adapter_deltas(tree, adapter), adapter_deltas(tree2, adapter2)
  assert sorted(d1) == sorted(d2)
  for k in d1:
    np.testing.assert_allclose(d2[k], d1[k], rtol=1e-6, atol=1e-6)
  model_kernels = [p for p in layout.param_shapes(config)
                   if p.endswith("/kernel")]
  assert ([p for p in model_kernels if adapter2.matches(p)] ==
          [p for p in model_kernels if adapter.matches(p)])


def test_layers_to_transform_gives_exact_targets(tmp_path):
  def only_block_1(w):
    for k in [k for k in w if ".block.1." not in k]:
      del w[k]
  d = _edited(tmp_path, "lora_tiny", {"layers_to_transform": [1]},
              only_block_1)
  adapter, tree = hf_peft.import_peft_adapter(d)
  assert adapter.matches("encoder/layers_1/attention/query/kernel")
  assert not adapter.matches("encoder/layers_0/attention/query/kernel")
  assert set(tree["encoder"]) == {"layers_1"}


def test_export_refuses_kron_factors_peft_cannot_express(tmp_path, mt5):
  adapter = AdapterConfig(kind="krona", rank=2, alpha=2.0, kron_factors=(4, 8))
  tree = _random_tree(mt5[0], adapter, 1)
  with pytest.raises(ValueError, match=r"kron_factors=\(4, 8\)"):
    hf_peft.export_peft_adapter(tree, adapter, mt5[0], str(tmp_path))


def _edited(tmp_path, name, config_changes=None, weight_change=None):
  d = tmp_path / name
  shutil.copytree(_dir(name), d)
  if config_changes:
    cfg = json.loads((d / hf_peft.CONFIG_FILE).read_text())
    cfg.update(config_changes)
    (d / hf_peft.CONFIG_FILE).write_text(json.dumps(cfg))
  if weight_change:
    w = load_file(str(d / hf_peft.WEIGHTS_FILE))
    weight_change(w)
    save_file(w, str(d / hf_peft.WEIGHTS_FILE))
  return str(d)


@pytest.mark.parametrize("name,changes,field", [
    ("lora_tiny", {"bias": "all"}, "bias"),
    ("lora_tiny", {"rank_pattern": {"q": 8}}, "rank_pattern"),
    ("lora_tiny", {"use_dora": True}, "use_dora"),
    ("lora_tiny", {"peft_type": "IA3"}, "peft_type"),
    ("lokr_tiny", {"decompose_both": True}, "decompose_both"),
    ("lokr_tiny", {"alpha_pattern": {"k": 2}}, "alpha_pattern"),
])
def test_unsupported_peft_fields_are_named(tmp_path, name, changes, field):
  with pytest.raises(ValueError, match=field):
    hf_peft.import_peft_adapter(_edited(tmp_path, name, changes))


def test_unknown_module_and_decomposed_w1_are_named(tmp_path):
  key = "base_model.model.encoder.block.0.layer.0.SelfAttention.q"

  def rename(w):
    w[key.replace(".q", ".qq") + ".lora_A.weight"] = w.pop(
        key + ".lora_A.weight")
  with pytest.raises(ValueError, match=r"SelfAttention\.qq"):
    hf_peft.import_peft_adapter(_edited(tmp_path, "lora_tiny",
                                        weight_change=rename))

  def decompose(w):
    w1 = w.pop(key + ".lokr_w1")
    w[key + ".lokr_w1_a"], w[key + ".lokr_w1_b"] = w1[:, :2], w1[:2]
  with pytest.raises(ValueError, match="lokr_w1_a"):
    hf_peft.import_peft_adapter(_edited(tmp_path, "lokr_tiny",
                                        weight_change=decompose))


def test_module_missing_from_base_model_is_named(tmp_path, mt5):
  def extra_block(w):
    for leaf in ("lora_A.weight", "lora_B.weight"):
      src = f"base_model.model.encoder.block.1.layer.0.SelfAttention.q.{leaf}"
      w[src.replace("block.1", "block.5")] = w[src]
  d = _edited(tmp_path, "lora_tiny", weight_change=extra_block)
  with pytest.raises(ValueError, match="encoder/layers_5/attention/query"):
    hf_peft.import_peft_adapter(d, mt5[0])


def test_pickled_adapter_is_refused(tmp_path):
  shutil.copy(os.path.join(_dir("lora_tiny"), hf_peft.CONFIG_FILE),
              tmp_path / hf_peft.CONFIG_FILE)
  (tmp_path / "adapter_model.bin").write_bytes(b"not unpickled")
  with pytest.raises(ValueError, match="adapter_model.bin"):
    hf_peft.import_peft_adapter(str(tmp_path))


def test_peft_factorization_examples():
  # The examples peft documents for its factorization.
  assert hf_peft.peft_factorization(256) == (16, 16)
  assert hf_peft.peft_factorization(128) == (8, 16)
  assert hf_peft.peft_factorization(127) == (1, 127)
  assert hf_peft.peft_factorization(128, 4) == (4, 32)
  assert hf_peft.peft_factorization(384) == (16, 24)
