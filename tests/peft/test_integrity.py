"""Adapter files are what their manifest says: config, dtype and content.

The manifest records a sha256 per tensor (format 2); a manifest whose config
disagrees with its tensor shapes, a flipped bit, NaNs written into the data,
swapped tensors or an edited dtype are refused naming the file and tensor.
"""

import dataclasses
import json
import logging
import os
import shutil
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lta.arithmetic import compositions as arithmetic
from lta.arithmetic import compat
from lta.checkpoints import hf
from lta.errors import CheckpointError
from lta.adapters import adapter_io
from lta.checkpoints import hf_peft
from lta.adapters.manifest import Adapter, AdapterManifest
from tests.arithmetic.random_adapters import lora_config, make_adapter
from tests.checkpoints import hf_fixtures as fx

QUERY_A = "encoder/layers_0/attention/query/lora_a"


@pytest.fixture
def saved(tmp_path):
  """A saved rank-4 LoRA adapter: (directory, Adapter)."""
  adapter = make_adapter(np.random.default_rng(0))
  adapter_io.save_adapter(str(tmp_path), adapter.tree, adapter.manifest)
  return tmp_path, adapter


def _edit_manifest(directory, fn):
  path = directory / adapter_io.MANIFEST_FILE
  manifest = json.loads(path.read_text())
  fn(manifest)
  path.write_text(json.dumps(manifest))


def _edit_tensors(directory, fn):
  path = str(directory / adapter_io.WEIGHTS_FILE)
  tensors = load_file(path)
  fn(tensors)
  save_file(tensors, path)


def _refused(directory, *parts):
  with pytest.raises(CheckpointError) as e:
    adapter_io.load_adapter(str(directory))
  for part in parts:
    assert part in str(e.value), str(e.value)
  return str(e.value)


# --- a manifest that disagrees with its tensors -----------------------------


def test_rank_2_config_on_rank_4_factors_is_refused_on_load(saved):
  directory, _ = saved
  _edit_manifest(directory, lambda m: m["adapter"].update(rank=2))
  _refused(directory, str(directory / adapter_io.MANIFEST_FILE),
           "decoder/layers_0/encoder_decoder_attention/value/lora_a",
           "[12, 4]", "[12, 2]")


def test_manifest_and_config_cannot_disagree_so_no_merge_goes_ahead():
  adapter = make_adapter(np.random.default_rng(1))
  rank2 = lora_config(rank=2, alpha=8.0)  # scale 4.0 instead of 2.0
  with pytest.raises(CheckpointError, match=r"value/lora_a has shape "
                     r"\[12, 4\]; the config \(rank=2\) gives \[12, 2\]"):
    AdapterManifest.for_tree(
        adapter.tree, rank2, base_model_fingerprint="sha256:x",
        base_model_name="m", task="xlsum", language="en")
  with pytest.raises(CheckpointError, match="rank=2"):
    dataclasses.replace(adapter.manifest, adapter=rank2.to_dict())
  # A tree that does not match its manifest never reaches the arithmetic.
  other = make_adapter(np.random.default_rng(2), rank2)
  mixed = Adapter(adapter.tree, other.manifest, "mixed")
  with pytest.raises(compat.IncompatibleAdaptersError,
                     match=r"mixed: .*lora_a has shape \[12, 4\], manifest "
                     r"says \[12, 2\]"):
    arithmetic.merge_adapters([mixed, other], [0.5, 0.5], space="delta")


# --- content hashes -----------------------------------------------------------


def test_manifest_records_a_sha256_per_tensor(saved):
  directory, adapter = saved
  manifest = json.loads((directory / adapter_io.MANIFEST_FILE).read_text())
  assert manifest["format_version"] == 2
  assert set(manifest["tensor_sha256"]) == set(manifest["shapes"])
  tree, loaded = adapter_io.load_adapter(str(directory))
  assert loaded == adapter.manifest


def test_flipped_bit_is_refused_naming_the_tensor(saved):
  directory, _ = saved
  path = directory / adapter_io.WEIGHTS_FILE
  data = bytearray(path.read_bytes())
  data[-1] ^= 1  # an exponent bit of the last element: still finite
  path.write_bytes(bytes(data))
  _refused(directory, str(path), "sha256", "does not match")


def test_nan_written_into_the_data_is_refused(saved):
  directory, _ = saved
  path = directory / adapter_io.WEIGHTS_FILE
  data = bytearray(path.read_bytes())
  (header_len,) = struct.unpack("<Q", data[:8])
  start = 8 + header_len + json.loads(data[8:8 + header_len])[QUERY_A][
      "data_offsets"][0]
  data[start:start + 4] = struct.pack("<f", float("nan"))
  path.write_bytes(bytes(data))
  _refused(directory, str(path), QUERY_A)


def test_swapped_tensors_of_one_shape_are_refused(saved):
  directory, _ = saved
  value_a = "decoder/layers_0/encoder_decoder_attention/value/lora_a"

  def swap(t):  # both (12, 4)
    t[QUERY_A], t[value_a] = t[value_a], t[QUERY_A]
  _edit_tensors(directory, swap)
  _refused(directory, str(directory / adapter_io.WEIGHTS_FILE), "sha256")


def test_a_manifest_from_before_hashes_loads_with_a_warning(saved, caplog):
  directory, adapter = saved

  def downgrade(m):
    m["format_version"] = 1
    del m["tensor_sha256"]
  _edit_manifest(directory, downgrade)
  with caplog.at_level(logging.WARNING):
    tree, manifest = adapter_io.load_adapter(str(directory))
  assert manifest.format_version == 1 and not manifest.tensor_sha256
  assert any("content hashes" in r.getMessage() and
             adapter_io.MANIFEST_FILE in r.getMessage()
             for r in caplog.records)
  # Still checked for finite values.
  _edit_tensors(directory, lambda t: t[QUERY_A].__setitem__((0, 0), np.nan))
  _refused(directory, QUERY_A, "1 NaN")
  # Saving again writes hashes.
  _edit_tensors(directory, lambda t: t[QUERY_A].__setitem__((0, 0), 0.5))
  tree, manifest = adapter_io.load_adapter(str(directory))
  adapter_io.save_adapter(str(directory), tree, manifest)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    _, upgraded = adapter_io.load_adapter(str(directory))
  assert upgraded.format_version == 2 and upgraded.tensor_sha256
  assert not caplog.records


def test_save_refuses_a_manifest_with_another_trees_hashes(tmp_path):
  adapter = make_adapter(np.random.default_rng(3))
  changed = arithmetic.scale(adapter.tree, 2.0)
  with pytest.raises(ValueError, match="content of another tree"):
    adapter_io.save_adapter(str(tmp_path), changed, adapter.manifest)


# --- dtypes -------------------------------------------------------------------


def _retype_first_tensor(path, old=b'"F32"', new=b'"I32"'):
  """Edits the header's first dtype in place, as a corrupt file would."""
  data = bytearray(open(path, "rb").read())
  at = data.index(old)
  data[at:at + len(old)] = new
  open(path, "wb").write(bytes(data))


def test_int_dtype_in_an_lta_adapter_is_refused(saved):
  directory, _ = saved
  path = str(directory / adapter_io.WEIGHTS_FILE)
  _retype_first_tensor(path)
  _refused(directory, path, "int32", "float32")


def test_int_dtype_in_a_peft_adapter_is_refused(tmp_path):
  shutil.copytree(os.path.join(fx.FIXTURES, "lora_tiny"), tmp_path / "a")
  path = str(tmp_path / "a" / hf_peft.WEIGHTS_FILE)
  _retype_first_tensor(path)
  with pytest.raises(CheckpointError, match=r"tensor base_model\.model\.\S+ "
                     r"has dtype int32") as e:
    hf_peft.import_peft_adapter(str(tmp_path / "a"))
  assert path in str(e.value)


def test_int_dtype_in_an_hf_checkpoint_is_refused(tmp_path):
  for name in (hf.CONFIG_FILE, hf.SAFETENSORS):
    shutil.copy(os.path.join(fx.MT5, name), tmp_path / name)
  path = str(tmp_path / hf.SAFETENSORS)
  _retype_first_tensor(path)
  with pytest.raises(CheckpointError, match=r"tensor \S+\.weight has dtype "
                     r"int32") as e:
    hf.load_hf_checkpoint(str(tmp_path))
  assert path in str(e.value)
