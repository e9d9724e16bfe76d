"""Paths of the HF fixtures and lta's forward pass on their inputs."""

import functools
import os

import jax
import numpy as np

from lta.checkpoints import hf
from lta.models.mt5.network import Transformer
from lta.adapters.tree import flatten_tree

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fixtures", "hf")
MT5 = os.path.join(FIXTURES, "mt5_tiny")
MT5_SHARDED = os.path.join(FIXTURES, "mt5_tiny_sharded")
T5V1 = os.path.join(FIXTURES, "t5v1_tiny")
# Generation references (greedy and beam generate, EOS mid-sequence).
MT5_GEN = os.path.join(FIXTURES, "mt5_gen_tiny")
T5V1_GEN = os.path.join(FIXTURES, "t5v1_gen_tiny")


def reference(name: str):
  return dict(np.load(os.path.join(FIXTURES, f"{name}.reference.npz")))


@functools.lru_cache(maxsize=None)
def _jitted(config, adapter):
  model = Transformer(config=config, adapter=adapter)
  logits = jax.jit(lambda v, e, d: model.apply(v, e, d, enable_dropout=False))
  encode = jax.jit(lambda v, e: model.apply(
      v, e, enable_dropout=False, method=Transformer.encode))
  return logits, encode


def lta_logits(config, params, enc, dec, adapter=None, adapters=None):
  variables = {"params": params}
  if adapters is not None:
    variables["adapters"] = adapters
  return np.asarray(_jitted(config, adapter)[0](variables, enc, dec))


def lta_encode(config, params, enc):
  return np.asarray(_jitted(config, None)[1]({"params": params}, enc))


def assert_same_params(got, want):
  """Same parameter names, dtypes and values, bit for bit."""
  got, want = flatten_tree(got), flatten_tree(want)
  assert sorted(got) == sorted(want)
  for name, value in want.items():
    assert got[name].dtype == value.dtype, name
    np.testing.assert_array_equal(got[name], value, err_msg=name)


def assert_deltas_match(deltas, ref) -> int:
  """Each ΔW `ref` records (as "delta/<HF module>", HF's (out, in) layout)
  equals lta's; returns how many were compared."""
  checked = 0
  for key, want in ref.items():
    if key.startswith("delta/"):
      kernel = hf.hf_module_to_lta(key[len("delta/"):])
      np.testing.assert_allclose(deltas[kernel], want.T, atol=1e-6, rtol=0,
                                 err_msg=key)
      checked += 1
  return checked
