"""Manifest JSON and the safetensors adapter format."""

import dataclasses
import json
import os

import numpy as np
import pytest

from lta.adapters import adapter_io
from lta.adapters.manifest import AdapterManifest, adapter_fingerprint
from tests.arithmetic.random_adapters import lora_config, make_adapter


def test_manifest_json_round_trip():
  a = make_adapter(np.random.default_rng(0))
  m = dataclasses.replace(a.manifest, provenance={"run": "x", "step": 5})
  again = AdapterManifest.from_json(m.to_json())
  assert again == m
  assert again.config == lora_config()


def test_manifest_names_missing_and_unknown_fields():
  d = make_adapter(np.random.default_rng(0)).manifest.to_dict()
  del d["language"]
  d["colour"] = "red"
  with pytest.raises(ValueError, match=r"m.json: missing fields \['language'\]"
                     r", unknown fields \['colour'\]"):
    AdapterManifest.from_json(json.dumps(d), source="m.json")
  d = make_adapter(np.random.default_rng(0)).manifest.to_dict()
  d["adapter"]["kind"] = "ia3"
  with pytest.raises(ValueError, match="not a valid AdapterConfig"):
    AdapterManifest.from_dict(d)
  with pytest.raises(ValueError, match="not valid JSON"):
    AdapterManifest.from_json("{", source="m.json")


def test_fingerprint_tracks_values():
  a = make_adapter(np.random.default_rng(0))
  fp = adapter_fingerprint(a.tree)
  assert fp == adapter_fingerprint(a.tree)
  a.tree["encoder"]["layers_0"]["attention"]["query"]["lora_a"][0, 0] += 1
  assert adapter_fingerprint(a.tree) != fp


def test_save_load_round_trip(tmp_path):
  a = make_adapter(np.random.default_rng(1))
  adapter_io.save_adapter(str(tmp_path), a.tree, a.manifest)
  tree, manifest = adapter_io.load_adapter(str(tmp_path))
  assert manifest == a.manifest
  assert adapter_fingerprint(tree) == adapter_fingerprint(a.tree)


def test_load_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="manifest.json"):
    adapter_io.load_adapter(str(tmp_path))
  a = make_adapter(np.random.default_rng(2))
  adapter_io.save_adapter(str(tmp_path), a.tree, a.manifest)
  weights = os.path.join(tmp_path, adapter_io.WEIGHTS_FILE)
  with open(weights, "wb") as f:
    f.write(b"not safetensors")
  with pytest.raises(ValueError, match="adapter.safetensors: not a readable"):
    adapter_io.load_adapter(str(tmp_path))
  other = make_adapter(np.random.default_rng(3), lora_config(rank=2))
  adapter_io.save_adapter(str(tmp_path), other.tree, other.manifest)
  with open(os.path.join(tmp_path, adapter_io.MANIFEST_FILE), "w") as f:
    f.write(a.manifest.to_json())
  with pytest.raises(ValueError, match="does not match .*manifest.json.*wrong "
                     "shape"):
    adapter_io.load_adapter(str(tmp_path))


def test_save_refuses_a_disagreeing_manifest(tmp_path):
  a = make_adapter(np.random.default_rng(4))
  b = make_adapter(np.random.default_rng(4), lora_config(rank=2))
  with pytest.raises(ValueError, match="tree and manifest shapes differ"):
    adapter_io.save_adapter(str(tmp_path), a.tree, b.manifest)
