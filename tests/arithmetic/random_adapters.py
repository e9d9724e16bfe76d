"""Random adapter trees shaped like the real ones, for arithmetic tests."""

import numpy as np

from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest

BASE = "sha256:base-model-test"
KERNELS = ("encoder/layers_0/attention/query", "encoder/layers_0/attention/out",
           "decoder/layers_0/encoder_decoder_attention/value")
D_MODEL, INNER = 12, 8


def _kernel_shape(module):
  return (INNER, D_MODEL) if module.endswith("/out") else (D_MODEL, INNER)


def lora_config(rank=4, alpha=8.0, **kw):
  return AdapterConfig(kind="lora", rank=rank, alpha=alpha, **kw)


def krona_config(kron_b_rank=None, **kw):
  return AdapterConfig(kind="krona", kron_factors=(4, 2),
                       kron_b_rank=kron_b_rank, alpha=2.0, **kw)


def random_tree(rng, config, dtype=np.float32):
  tree = {}
  for module in KERNELS:
    d_in, d_out = _kernel_shape(module)
    leaves = {leaf: rng.normal(size=shape)
              for leaf, shape in config.leaf_shapes(d_in, d_out).items()}
    node = tree
    for key in module.split("/"):
      node = node.setdefault(key, {})
    node.update({k: v.astype(dtype) for k, v in leaves.items()})
  return tree


def make_adapter(rng, config=None, task="xlsum", language="en", base=BASE,
                 dtype=np.float32, name=""):
  config = config or lora_config()
  tree = random_tree(rng, config, dtype)
  manifest = AdapterManifest.for_tree(
      tree, config, base_model_fingerprint=base, base_model_name="mt5-test",
      task=task, language=language)
  return Adapter(tree, manifest, name or f"{task}[{language}]")


def base_params(rng):
  params = {}
  for module in KERNELS:
    node = params
    for key in module.split("/"):
      node = node.setdefault(key, {})
    node["kernel"] = rng.normal(size=_kernel_shape(module)).astype(np.float32)
  return params
