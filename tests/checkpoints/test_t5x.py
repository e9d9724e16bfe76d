import os
import shutil

from flax import serialization
import numpy as np
import pytest

from lta.checkpoints import hf
from lta.checkpoints import layout
from lta.checkpoints import t5x
from tests.checkpoints import hf_fixtures as fx
from tests.fixtures import make_t5x_fixture


@pytest.fixture(scope="module")
def mt5():
  return hf.load_hf_checkpoint(fx.MT5)


def _assert_same(params, loaded):
  fa, fb = layout.flatten(params), layout.flatten(loaded)
  assert sorted(fa) == sorted(fb)
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    assert fb[k].dtype == np.float32


def test_written_checkpoint_has_t5x_layout(tmp_path, mt5):
  ckpt = make_t5x_fixture.write_t5x(mt5[1], str(tmp_path), step=7)
  assert os.path.basename(ckpt) == "checkpoint_7"
  with open(os.path.join(ckpt, "checkpoint"), "rb") as f:
    contents = serialization.msgpack_restore(f.read())
  assert contents["version"] == 3
  spec = contents["optimizer"]["target"]["encoder"]["layers_0"]["attention"][
      "key"]["kernel"]
  assert spec["driver"] == "zarr"
  path = spec["kvstore"]["path"].rstrip("/")  # tensorstore adds a slash
  assert path == "target.encoder.layers_0.attention.key.kernel"
  assert os.path.isdir(os.path.join(ckpt, spec["kvstore"]["path"]))


@pytest.mark.parametrize("split_heads", [None, 3])
def test_t5x_import_equals_the_same_weights(tmp_path, mt5, split_heads):
  config, params = mt5
  ckpt = make_t5x_fixture.write_t5x(params, str(tmp_path),
                                    split_heads=split_heads)
  _assert_same(params, t5x.load_t5x_checkpoint(ckpt, config))
  # The msgpack file itself is accepted too.
  _assert_same(params, t5x.load_t5x_checkpoint(
      os.path.join(ckpt, "checkpoint"), config))


def test_orbax_t5x_import_equals_the_same_weights(tmp_path, mt5):
  config, params = mt5
  ckpt = make_t5x_fixture.write_orbax(params, str(tmp_path))
  _assert_same(params, t5x.load_t5x_checkpoint(ckpt, config))


def _with(params, change):
  flat = dict(layout.flatten(params))
  change(flat)
  return layout.unflatten(flat)


def test_unknown_missing_and_wrong_shape_are_named(tmp_path, mt5):
  config, params = mt5
  extra = "encoder/layers_7/attention/query/kernel"
  cases = {
      "unknown": (lambda f: f.update({extra: np.zeros((32, 24), np.float32)}),
                  extra),
      "missing": (lambda f: f.pop("decoder/layers_2/mlp/wo/kernel"),
                  "decoder/layers_2/mlp/wo/kernel"),
      "shape": (lambda f: f.update({"decoder/logits_dense/kernel":
                                    np.zeros((32, 100), np.float32)}),
                r"decoder/logits_dense/kernel.*\(32, 100\).*\(32, 128\)"),
  }
  for name, (change, pattern) in cases.items():
    ckpt = make_t5x_fixture.write_t5x(_with(params, change),
                                      str(tmp_path / name))
    with pytest.raises(ValueError, match=pattern):
      t5x.load_t5x_checkpoint(ckpt, config)


def test_missing_zarr_array_is_named(tmp_path, mt5):
  config, params = mt5
  ckpt = make_t5x_fixture.write_t5x(params, str(tmp_path))
  gone = "target.decoder.layers_1.self_attention.value.kernel"
  shutil.rmtree(os.path.join(ckpt, gone))
  with pytest.raises(FileNotFoundError, match=gone):
    t5x.load_t5x_checkpoint(ckpt, config)


def test_not_a_checkpoint(tmp_path, mt5):
  with pytest.raises(FileNotFoundError, match="checkpoint"):
    t5x.load_t5x_checkpoint(str(tmp_path), mt5[0])
