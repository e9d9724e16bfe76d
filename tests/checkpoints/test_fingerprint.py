import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from lta.checkpoints import fingerprint
from lta.checkpoints import hf
from lta.adapters.tree import flatten_tree, unflatten_tree
from tests.checkpoints import hf_fixtures as fx


@pytest.fixture(scope="module")
def mt5():
  return hf.load_hf_checkpoint(fx.MT5)


def _changed(params, path, fn):
  flat = dict(flatten_tree(params))
  flat[path] = fn(flat[path].copy())
  return unflatten_tree(flat)


def test_same_weights_from_another_format_give_the_same_fingerprint(mt5):
  config, params = mt5
  _, from_msgpack = hf.load_hf_checkpoint(os.path.join(fx.MT5,
                                                       hf.FLAX_MSGPACK))
  fp = fingerprint.base_model_fingerprint(config, params)
  assert re.fullmatch(r"sha256:[0-9a-f]{64}", fp)
  assert fingerprint.base_model_fingerprint(config, from_msgpack) == fp
  # Device arrays hash as host arrays do.
  on_device = {k: jnp.asarray(v) for k, v in flatten_tree(params).items()}
  assert fingerprint.base_model_fingerprint(
      config, unflatten_tree(on_device)) == fp
  boxed = {k: nn.LogicallyPartitioned(v, ("embed",) * v.ndim)
           for k, v in on_device.items()}
  assert fingerprint.base_model_fingerprint(
      config, unflatten_tree(boxed)) == fp


def test_fingerprint_changes_with_weights_config_shape_and_dtype(mt5):
  config, params = mt5
  fp = fingerprint.base_model_fingerprint(config, params)
  kernel = "decoder/layers_1/self_attention/out/kernel"

  def bump_first(x):
    x.reshape(-1)[0] += 1e-3  # index 0 is always sampled
    return x
  variants = [
      (config, _changed(params, kernel, bump_first)),
      (config.replace(layer_norm_epsilon=1e-5), params),
      (config, _changed(params, kernel, lambda x: x.astype(np.float16))),
      (config, _changed(params, kernel, lambda x: x.reshape(8, -1))),
  ]
  fps = {fingerprint.base_model_fingerprint(c, p) for c, p in variants}
  assert len(fps) == len(variants) and fp not in fps
  # Transient fields (dropout, name) are not part of the base model.
  assert fingerprint.base_model_fingerprint(
      config.replace(dropout_rate=0.3, name="other"), params) == fp


def test_sample_is_strided_and_bounded():
  idx = fingerprint.sample_indices((1000, 1000))
  flat = np.ravel_multi_index(idx, (1000, 1000))
  assert len(flat) == fingerprint.SAMPLES_PER_TENSOR
  assert flat[0] == 0 and flat[-1] == 10**6 - 1
  small = np.ravel_multi_index(fingerprint.sample_indices((3, 5)), (3, 5))
  np.testing.assert_array_equal(small, np.arange(15))


def test_a_large_sharded_device_array_hashes_as_its_host_copy(mt5):
  """Above COPY_WHOLE_AT_MOST elements the sample is gathered on device
  (the smaller tensors above are copied whole): the same fingerprint."""
  config, _ = mt5
  devices = jax.devices()
  columns = fingerprint.COPY_WHOLE_AT_MOST // len(devices) + 1
  host = np.arange(len(devices) * columns, dtype=np.float32).reshape(
      len(devices), columns)
  sharding = NamedSharding(Mesh(np.array(devices), ("rows",)), P("rows"))
  on_device = jax.device_put(host, sharding)
  assert on_device.size > fingerprint.COPY_WHOLE_AT_MOST
  assert fingerprint.base_model_fingerprint(config, {"w": on_device}) == (
      fingerprint.base_model_fingerprint(config, {"w": host}))
