"""Fault harness: damaged adapter, PEFT and HF checkpoint files are refused.

Every case copies a small, valid checkpoint directory, damages one file
(truncation, bit flips in header or data, wrong JSON types, missing or
extra keys, lists for objects, dtype edits, swapped tensors, NaN, wrong
shapes) and loads it with the loader users run. Each must raise an
lta.errors.LtaError whose message is one line and names the damaged file.

Formats without content hashes (HF, PEFT) cannot notice a flipped data bit
that leaves a finite value, or two swapped tensors of one shape; lta's own
adapter format can (manifest sha256), and those cases run on it.
"""

import os
import shutil

import numpy as np
import pytest

from lta.checkpoints import hf
from lta.errors import LtaError
from lta.adapters import adapter_io
from lta.checkpoints import hf_peft
from lta.adapters.manifest import AdapterManifest
from tests.checkpoints import hf_fixtures as fx
from tests.checkpoints import mutations as mu

MANIFEST, LTA_WEIGHTS = adapter_io.MANIFEST_FILE, adapter_io.WEIGHTS_FILE
PEFT_CONFIG, PEFT_WEIGHTS = hf_peft.CONFIG_FILE, hf_peft.WEIGHTS_FILE
HF_CONFIG, HF_WEIGHTS = hf.CONFIG_FILE, hf.SAFETENSORS
INDEX, MSGPACK = hf.SAFETENSORS_INDEX, hf.FLAX_MSGPACK
SHARD_1 = "model-00001-of-00003.safetensors"
SHARD_2 = "model-00002-of-00003.safetensors"
SHARD_3 = "model-00003-of-00003.safetensors"


def _delete(path):
  os.remove(path)


def _json_cases(fixture, name):
  """Whole-file damage every JSON file gets."""
  return [
      (fixture, name, "truncated", mu.truncate(0.5)),
      (fixture, name, "empty", mu.replace_bytes(b"")),
      (fixture, name, "binary garbage", mu.replace_bytes(mu.GARBAGE)),
      (fixture, name, "a list", mu.json_edit(lambda o: [o])),
      (fixture, name, "a string", mu.json_edit(lambda o: "config")),
  ]


def _safetensors_cases(fixture, name):
  """Damage every safetensors file gets (all refusable without hashes)."""
  return [
      (fixture, name, "truncated", mu.truncate(0.5)),
      (fixture, name, "cut inside the header", mu.truncate(0.01)),
      (fixture, name, "empty", mu.replace_bytes(b"")),
      (fixture, name, "binary garbage", mu.replace_bytes(mu.GARBAGE)),
      (fixture, name, "header length too large", mu.header_length(1 << 40)),
      (fixture, name, "header length zero", mu.header_length(0)),
      (fixture, name, "dtype F32 -> I32", mu.header_dtype("I32")),
      (fixture, name, "dtype F32 -> F16", mu.header_dtype("F16")),
      (fixture, name, "dtype F32 -> BF16", mu.header_dtype("BF16", 1)),
      (fixture, name, "dtype F32 -> U8", mu.header_dtype("U8", 2)),
      (fixture, name, "offsets past the data",
       mu.header_offsets(lambda o: [o[0], o[1] + 4])),
      (fixture, name, "overlapping offsets",
       mu.header_offsets(lambda o: [o[0] + 4, o[1] + 4])),
      (fixture, name, "NaN in the data", mu.write_value(float("nan"))),
      (fixture, name, "Inf in the data", mu.write_value(float("inf"), 1, 3)),
      (fixture, name, "a tensor resaved as int32", mu.tensors_edit(
          lambda t, n: t.update({n[0]: t[n[0]].astype(np.int32)}))),
      (fixture, name, "a tensor one column short", mu.tensors_edit(
          lambda t, n: t.update({n[0]: np.ascontiguousarray(
              t[n[0]][:, :-1])}))),
      (fixture, name, "a 1-D tensor", mu.tensors_edit(
          lambda t, n: t.update({n[0]: t[n[0]].ravel().copy()}))),
      (fixture, name, "a tensor removed",
       mu.tensors_edit(lambda t, n: t.pop(n[-1]))),
  ]


def _lta_cases():
  f = "lta_lora"
  cases = _json_cases(f, MANIFEST) + _safetensors_cases(f, LTA_WEIGHTS)
  for field in ("base_model_fingerprint", "base_model_name", "adapter",
                "shapes", "dtype", "task", "language", "provenance",
                "format_version", "tensor_sha256"):
    cases.append((f, MANIFEST, f"{field} missing", mu.del_key(field)))
  wrong_types = [
      ("base_model_fingerprint", 5), ("base_model_name", None),
      ("task", ["xlsum"]), ("language", {}), ("dtype", "int32"),
      ("dtype", 7), ("adapter", ["lora"]), ("adapter", "lora"),
      ("shapes", [[32, 4]]), ("shapes", "32x4"), ("provenance", []),
      ("format_version", "2"), ("format_version", 99),
      ("format_version", True), ("tensor_sha256", []),
  ]
  for field, value in wrong_types:
    cases.append((f, MANIFEST, f"{field}={value!r}",
                  mu.set_key(field, value)))
  adapter_edits = [
      ("kind", "ia3"), ("rank", "4"), ("rank", 0), ("rank", 2),
      ("rank", 8), ("alpha", "eight"), ("alpha", None), ("rslora", "yes"),
      ("dropout_rate", 1.5), ("targets", "("), ("targets", "encoder/.*"),
      ("kind", "krona"), ("colour", "red"), ("kron_factor_rule", "mine"),
  ]
  for field, value in adapter_edits:
    cases.append((f, MANIFEST, f"adapter.{field}={value!r}",
                  mu.set_key("adapter", field, value)))
  cases += [
      (f, MANIFEST, "adapter.rank missing", mu.del_key("adapter", "rank")),
      (f, MANIFEST, "an unknown field", mu.set_key("colour", "red")),
      (f, MANIFEST, "a shape changed", mu.first_entry(
          "shapes", lambda m, k: m.__setitem__(k, [m[k][0], m[k][1] + 1]))),
      (f, MANIFEST, "a shape as a string", mu.first_entry(
          "shapes", lambda m, k: m.__setitem__(k, "32x4"))),
      (f, MANIFEST, "a negative dimension", mu.first_entry(
          "shapes", lambda m, k: m.__setitem__(k, [-1, 4]))),
      (f, MANIFEST, "a shape removed",
       mu.first_entry("shapes", lambda m, k: m.pop(k))),
      (f, MANIFEST, "a shape added", mu.first_entry(
          "shapes", lambda m, k: m.__setitem__(k.replace("/key/", "/kez/"),
                                               m[k]))),
      (f, MANIFEST, "rank 2 in config and shapes, rank-4 tensors",
       mu.json_edit(_claim_rank_2)),
      (f, MANIFEST, "a sha256 not hex", mu.first_entry(
          "tensor_sha256", lambda m, k: m.__setitem__(k, "xyz"))),
      (f, MANIFEST, "a sha256 of another tensor", mu.first_entry(
          "tensor_sha256", lambda m, k: m.__setitem__(
              k, m[sorted(m)[1]]))),
      (f, MANIFEST, "a sha256 removed",
       mu.first_entry("tensor_sha256", lambda m, k: m.pop(k))),
      (f, MANIFEST, "no sha256 at all", mu.set_key("tensor_sha256", {})),
      (f, LTA_WEIGHTS, "header bit flip in a tensor name",
       mu.flip_header_bit(b"query")),
      (f, LTA_WEIGHTS, "header shape transposed",
       mu.header_shape(lambda s: s[::-1])),
      (f, LTA_WEIGHTS, "data bit flip, first element", mu.flip_data_bit()),
      (f, LTA_WEIGHTS, "data bit flip, sign", mu.flip_data_bit(3, 5, 31)),
      (f, LTA_WEIGHTS, "data bit flip, exponent", mu.flip_data_bit(7, 2, 25)),
      (f, LTA_WEIGHTS, "two same-shape tensors swapped",
       mu.swap_same_shape()),
      (f, LTA_WEIGHTS, "an extra tensor", mu.tensors_edit(
          lambda t, n: t.update({"encoder/extra/lora_a": t[n[0]]}))),
      (f, LTA_WEIGHTS, "every tensor as float16", mu.tensors_edit(
          lambda t, n: t.update({k: v.astype(np.float16)
                                 for k, v in t.items()}))),
  ]
  k = "lta_lokr"
  cases += [
      (k, MANIFEST, "adapter.kron_b_rank=3",
       mu.set_key("adapter", "kron_b_rank", 3)),
      (k, MANIFEST, "adapter.kron_b_rank=null",
       mu.set_key("adapter", "kron_b_rank", None)),
      (k, MANIFEST, "adapter.kron_decompose_factor=3",
       mu.set_key("adapter", "kron_decompose_factor", 3)),
      (k, MANIFEST, "fixed factors that do not fit", mu.json_edit(
          lambda o: o["adapter"].update(kron_factor_rule="fixed",
                                        kron_decompose_factor=-1,
                                        kron_factors=[2, 2]))),
      (k, MANIFEST, "adapter.kron_factors=[4]",
       mu.set_key("adapter", "kron_factors", [4])),
      (k, MANIFEST, "adapter.kind=lora", mu.set_key("adapter", "kind",
                                                    "lora")),
      (k, LTA_WEIGHTS, "two B factors of one shape swapped",
       mu.swap_same_shape("kron_b_down")),
      (k, LTA_WEIGHTS, "NaN in a factor", mu.write_value(float("nan"), 4)),
      (k, LTA_WEIGHTS, "dtype F32 -> I32", mu.header_dtype("I32", 5)),
  ]
  return cases


def _claim_rank_2(manifest):
  manifest["adapter"]["rank"] = 2
  for path, shape in manifest["shapes"].items():
    manifest["shapes"][path] = ([shape[0], 2] if path.endswith("lora_a")
                                else [2, shape[1]])


def _peft_cases():
  f, k = "peft_lora", "peft_lokr"
  cases = _json_cases(f, PEFT_CONFIG) + _safetensors_cases(f, PEFT_WEIGHTS)
  lora_edits = [
      ("peft_type", "IA3"), ("peft_type", None), ("peft_type", ["LORA"]),
      ("r", "four"), ("r", 0), ("r", -2), ("r", 2.5), ("r", True),
      ("r", None), ("r", [4]), ("r", 8), ("lora_alpha", "eight"),
      ("lora_alpha", None), ("lora_alpha", [8]), ("use_rslora", "yes"),
      ("lora_dropout", "x"), ("use_dora", True), ("bias", "all"),
      ("rank_pattern", {"q": 8}), ("task_type", "CAUSAL_LM"),
  ]
  cases += [(f, PEFT_CONFIG, f"{field}={value!r}", mu.set_key(field, value))
            for field, value in lora_edits]
  cases += [(f, PEFT_CONFIG, f"{field} missing", mu.del_key(field))
            for field in ("peft_type", "r", "lora_alpha")]
  lokr_edits = [
      ("alpha", "x"), ("alpha", None), ("r", "2"), ("r", 3), ("r", 8),
      ("decompose_factor", "x"), ("decompose_factor", 0),
      ("decompose_factor", 3), ("decompose_both", True),
  ]
  cases += [(k, PEFT_CONFIG, f"{field}={value!r}", mu.set_key(field, value))
            for field, value in lokr_edits]
  cases += [(k, PEFT_CONFIG, f"{field} missing", mu.del_key(field))
            for field in ("alpha", "r")]
  q = "base_model.model.encoder.block.0.layer.0.SelfAttention.q"
  cases += [
      (f, PEFT_WEIGHTS, "header bit flip in a module name",
       mu.flip_header_bit(b"q.lora_A")),
      (f, PEFT_WEIGHTS, "header shape transposed",
       mu.header_shape(lambda s: s[::-1])),
      (f, PEFT_WEIGHTS, "lora_A and lora_B swapped", mu.swap_tensors(
          lambda n: (f"{q}.lora_A.weight", f"{q}.lora_B.weight"))),
      (f, PEFT_WEIGHTS, "an unknown module", mu.tensors_edit(
          lambda t, n: t.update({n[0].replace(".k.", ".kk."): t[n[0]]}))),
      (f, PEFT_WEIGHTS, "a base weight among the adapter's", mu.tensors_edit(
          lambda t, n: t.update({f"{q}.weight": np.zeros((24, 32),
                                                         np.float32)}))),
      (f, PEFT_WEIGHTS, "a module of a missing layer", mu.tensors_edit(
          lambda t, n: t.update({
              f"{q}.lora_A.weight".replace("block.0", "block.7"):
                  t[f"{q}.lora_A.weight"],
              f"{q}.lora_B.weight".replace("block.0", "block.7"):
                  t[f"{q}.lora_B.weight"]}))),
      (k, PEFT_WEIGHTS, "lokr_w1 removed",
       mu.tensors_edit(lambda t, n: t.pop(f"{q}.lokr_w1"))),
      (k, PEFT_WEIGHTS, "w1 decomposed", mu.tensors_edit(_decompose_w1)),
      (k, PEFT_WEIGHTS, "one module with a whole w2",
       mu.tensors_edit(_whole_w2)),
      (k, PEFT_WEIGHTS, "NaN in lokr_w2_b", mu.write_value(float("nan"), 3)),
      (k, PEFT_WEIGHTS, "dtype F32 -> I32", mu.header_dtype("I32", 2)),
      (k, PEFT_WEIGHTS, "w2_a and w2_b swapped", mu.swap_tensors(
          lambda n: (f"{q}.lokr_w2_a", f"{q}.lokr_w2_b"))),
  ]
  return cases


def _decompose_w1(tensors, names):
  key = [n for n in names if n.endswith("lokr_w1")][0]
  w1 = tensors.pop(key)
  tensors[key + "_a"], tensors[key + "_b"] = w1[:, :2].copy(), w1[:2].copy()


def _whole_w2(tensors, names):
  key = [n for n in names if n.endswith("lokr_w2_a")][0][:-len("_a")]
  tensors[key] = tensors.pop(key + "_a") @ tensors.pop(key + "_b")


def _hf_cases():
  f, s, m = "hf_st", "hf_sharded", "hf_msgpack"
  cases = (_json_cases(f, HF_CONFIG) + _safetensors_cases(f, HF_WEIGHTS) +
           _json_cases(s, INDEX) + _safetensors_cases(s, SHARD_2))
  config_edits = [
      ("d_model", "32"), ("d_model", 32.5), ("d_model", None),
      ("d_model", [32]), ("d_model", True), ("d_model", 0),
      ("num_heads", 4), ("vocab_size", 64), ("num_layers", 3),
      ("num_decoder_layers", 2), ("d_ff", 40), ("d_kv", 6),
      ("model_type", "bert"), ("feed_forward_proj", "gated-silu"),
      ("feed_forward_proj", ["relu"]), ("tie_word_embeddings", "no"),
      ("tie_word_embeddings", True), ("relative_attention_num_buckets", 16),
  ]
  cases += [(f, HF_CONFIG, f"{field}={value!r}", mu.set_key(field, value))
            for field, value in config_edits]
  cases += [(f, HF_CONFIG, f"{field} missing", mu.del_key(field))
            for field in ("d_model", "model_type", "num_layers")]
  cases += [
      (f, HF_WEIGHTS, "header bit flip in a name",
       mu.flip_header_bit(b"shared")),
      (f, HF_WEIGHTS, "header shape transposed", mu.header_shape(
          lambda s: s[::-1])),
      (f, HF_WEIGHTS, "attention and MLP kernels swapped", mu.swap_tensors(
          lambda n: ("encoder.block.0.layer.0.SelfAttention.q.weight",
                     "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"))),
      (f, HF_WEIGHTS, "an extra block", mu.tensors_edit(
          lambda t, n: t.update({
              "encoder.block.2.layer.0.SelfAttention.q.weight":
                  t["encoder.block.0.layer.0.SelfAttention.q.weight"]}))),
      (f, HF_WEIGHTS, "an embedding alias that differs", mu.tensors_edit(
          lambda t, n: t.update({"decoder.embed_tokens.weight":
                                 t["shared.weight"] + 1.0}))),
      (s, INDEX, "weight_map missing", mu.del_key("weight_map")),
      (s, INDEX, "weight_map a list",
       mu.json_edit(lambda o: o.update(weight_map=list(o["weight_map"])))),
      (s, INDEX, "weight_map empty", mu.set_key("weight_map", {})),
      (s, INDEX, "a shard that does not exist", mu.first_entry(
          "weight_map", lambda w, k: w.__setitem__(k, "model-9.safetensors"))),
      (s, INDEX, "a shard outside the directory", mu.first_entry(
          "weight_map", lambda w, k: w.__setitem__(k, "../model.safetensors"))),
      (s, INDEX, "a shard name that is a number", mu.first_entry(
          "weight_map", lambda w, k: w.__setitem__(k, 3))),
      (s, INDEX, "a tensor no shard holds", mu.first_entry(
          "weight_map", lambda w, k: w.__setitem__("extra.weight", w[k]))),
      (s, INDEX, "a tensor put in the wrong shard", mu.json_edit(
          _wrong_shard)),
      (s, SHARD_3, "a shard deleted", _delete),
      (s, SHARD_1, "a shard's tensor the index does not list",
       mu.tensors_edit(lambda t, n: t.update({"extra.weight": t[n[0]]}))),
      (s, SHARD_3, "a shard's dtype F32 -> I32", mu.header_dtype("I32")),
  ]
  cases += [
      (m, HF_CONFIG, "num_heads=4", mu.set_key("num_heads", 4)),
      (m, MSGPACK, "truncated", mu.truncate(0.5)),
      (m, MSGPACK, "cut after a few bytes", mu.truncate(0.001)),
      (m, MSGPACK, "empty", mu.replace_bytes(b"")),
      (m, MSGPACK, "binary garbage", mu.replace_bytes(mu.GARBAGE)),
      (m, MSGPACK, "a list", mu.msgpack_raw([1, 2, 3])),
      (m, MSGPACK, "a number", mu.msgpack_raw(5)),
      (m, MSGPACK, "NaN in a kernel", mu.kernel_edit(mu.nan_at)),
      (m, MSGPACK, "an int32 kernel",
       mu.kernel_edit(lambda a: a.astype(np.int32))),
      (m, MSGPACK, "a kernel one row short",
       mu.kernel_edit(lambda a: np.ascontiguousarray(a[:-1]))),
      (m, MSGPACK, "a kernel that is a string", mu.kernel_edit(lambda a: "x")),
      (m, MSGPACK, "an unknown parameter", mu.msgpack_tree_edit(
          lambda t: t.update(extra={"kernel": np.zeros((2, 2), np.float32)}))),
      (m, MSGPACK, "lm_head missing",
       mu.msgpack_tree_edit(lambda t: t.pop("lm_head"))),
      (m, MSGPACK, "an array of an unknown dtype", mu.msgpack_raw(
          {"shared": {"embedding": mu.msgpack.ExtType(1, mu.msgpack.packb(
              ((2, 2), "float99", b"\0" * 16)))}})),
  ]
  return cases


def _wrong_shard(index):
  weight_map = index["weight_map"]
  name = sorted(weight_map)[0]
  others = sorted(set(weight_map.values()) - {weight_map[name]})
  weight_map[name] = others[0]


CASES = _lta_cases() + _peft_cases() + _hf_cases()


def make_pristine(root, mt5_config):
  """{fixture name: a valid checkpoint directory under `root`}."""
  dirs = {}
  for name, source, files in (
      ("hf_st", fx.MT5, (HF_CONFIG, HF_WEIGHTS)),
      ("hf_msgpack", fx.MT5, (HF_CONFIG, MSGPACK)),
      ("hf_sharded", fx.MT5_SHARDED,
       (HF_CONFIG, INDEX, SHARD_1, SHARD_2, SHARD_3)),
      ("peft_lora", os.path.join(fx.FIXTURES, "lora_tiny"),
       (PEFT_CONFIG, PEFT_WEIGHTS)),
      ("peft_lokr", os.path.join(fx.FIXTURES, "lokr_tiny"),
       (PEFT_CONFIG, PEFT_WEIGHTS))):
    os.makedirs(os.path.join(root, name))
    for file in files:
      shutil.copy(os.path.join(source, file), os.path.join(root, name, file))
    dirs[name] = os.path.join(root, name)
  for name, peft_dir in (("lta_lora", "lora_tiny"), ("lta_lokr", "lokr_tiny")):
    config, tree = hf_peft.import_peft_adapter(
        os.path.join(fx.FIXTURES, peft_dir), mt5_config)
    manifest = AdapterManifest.for_tree(
        tree, config, base_model_fingerprint="sha256:mt5-tiny",
        base_model_name="mt5_tiny", task="xlsum", language="en")
    dirs[name] = os.path.join(root, name)
    adapter_io.save_adapter(dirs[name], tree, manifest)
  return dirs


def load(fixture, directory, mt5_config):
  """Loads `directory` with the loader users run for its kind."""
  kind = fixture.split("_")[0]
  if kind == "lta":
    return adapter_io.load_adapter(directory)
  if kind == "peft":
    return hf_peft.import_peft_adapter(directory, mt5_config)
  return hf.load_hf_checkpoint(directory)


def damage(pristine, fixture, filename, mutate, directory):
  """A copy of the pristine `fixture` in `directory` with one file damaged;
  returns the damaged file's path."""
  shutil.copytree(pristine[fixture], directory)
  target = os.path.join(directory, filename)
  mutate(target)
  return target


@pytest.fixture(scope="module")
def mt5_config():
  return hf.load_hf_checkpoint(fx.MT5)[0]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, mt5_config):
  return make_pristine(str(tmp_path_factory.mktemp("pristine")), mt5_config)


def test_pristine_fixtures_load(pristine, mt5_config):
  for fixture, directory in pristine.items():
    load(fixture, directory, mt5_config)
  assert len(CASES) >= 117


@pytest.mark.parametrize(
    "fixture,filename,mutate",
    [pytest.param(f, n, mu_, id=f"{f}/{n}/{what}")
     for f, n, what, mu_ in CASES])
def test_damaged_file_is_refused_naming_it(pristine, mt5_config, tmp_path,
                                           fixture, filename, mutate):
  target = damage(pristine, fixture, filename, mutate,
                  str(tmp_path / fixture))
  with pytest.raises(LtaError) as e:
    load(fixture, os.path.dirname(target), mt5_config)
  message = str(e.value)
  assert "\n" not in message, message
  assert target in message, message
