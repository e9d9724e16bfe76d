"""Random adapter trees shaped like the real ones, for arithmetic tests.

One tree layout per model family: mT5's encoder/decoder attention, and the
decoder-only stack's grouped-query attention (decoder/layers_i/attention,
key and value narrower than query, as in Llama, Qwen and Gemma). Tests
that take the `family` fixture (tests/arithmetic/conftest.py) run on both.
"""

import numpy as np

from lta.adapters import added_layers
from lta.adapters.config import AdapterConfig
from lta.adapters.manifest import Adapter, AdapterManifest

BASE = "sha256:base-model-test"
D_MODEL, INNER, KV = 12, 8, 4
# {family: {module: kernel shape (in, out)}}; the first module of each is
# the one tests damage or single out.
MODULES = {
    "mt5": {"encoder/layers_0/attention/query": (D_MODEL, INNER),
            "encoder/layers_0/attention/out": (INNER, D_MODEL),
            "decoder/layers_0/encoder_decoder_attention/value":
                (D_MODEL, INNER)},
    "decoder": {"decoder/layers_0/attention/query": (D_MODEL, INNER),
                "decoder/layers_0/attention/out": (INNER, D_MODEL),
                "decoder/layers_1/attention/key": (D_MODEL, KV)},
}
FAMILIES = tuple(MODULES)
KERNELS = tuple(MODULES["mt5"])
BASE_MODEL_NAMES = {"mt5": "mt5-test", "decoder": "qwen2-test"}


def first_module(family="mt5"):
  """The path of the first adapted module, e.g. to damage it."""
  return next(iter(MODULES[family]))


def node(tree, module):
  """The adapter leaves {leaf: array} of `module` ('a/b/c') in `tree`."""
  for key in module.split("/"):
    tree = tree[key]
  return tree


def lora_config(rank=4, alpha=8.0, **kw):
  return AdapterConfig(kind="lora", rank=rank, alpha=alpha, **kw)


def krona_config(kron_b_rank=None, **kw):
  return AdapterConfig(kind="krona", kron_factors=(4, 2),
                       kron_b_rank=kron_b_rank, alpha=2.0, **kw)


def _module_shapes(config, family):
  """{module: {leaf: shape}} of a random adapter of `config`'s kind."""
  if config.kind == "prompt":
    return {"encoder": {added_layers.PROMPT: (config.num_virtual_tokens,
                                              D_MODEL)}}
  if config.kind == "bottleneck":
    shapes = added_layers.bottleneck_shapes(D_MODEL, config.bottleneck_width)
    return {f"{stack}/layers_0/{added_layers.adapter_name(sub)}": shapes
            for stack, subs in (("encoder", ("attention", "mlp")),
                                ("decoder", ("self_attention", "mlp")))
            for sub in subs
            if sub in added_layers.sublayers(config.bottleneck_placement)}
  return {module: config.leaf_shapes(d_in, d_out)
          for module, (d_in, d_out) in MODULES[family].items()}


def random_tree(rng, config, dtype=np.float32, family="mt5"):
  tree = {}
  for module, shapes in _module_shapes(config, family).items():
    leaves = {leaf: rng.normal(size=shape) for leaf, shape in shapes.items()}
    parent = tree
    for key in module.split("/"):
      parent = parent.setdefault(key, {})
    parent.update({k: v.astype(dtype) for k, v in leaves.items()})
  return tree


def make_adapter(rng, config=None, task="xlsum", language="en", base=BASE,
                 dtype=np.float32, name="", family="mt5"):
  config = config or lora_config()
  tree = random_tree(rng, config, dtype, family)
  manifest = AdapterManifest.for_tree(
      tree, config, base_model_fingerprint=base,
      base_model_name=BASE_MODEL_NAMES[family], task=task, language=language)
  return Adapter(tree, manifest, name or f"{task}[{language}]")


def base_params(rng, family="mt5"):
  params = {}
  for module, shape in MODULES[family].items():
    parent = params
    for key in module.split("/"):
      parent = parent.setdefault(key, {})
    parent["kernel"] = rng.normal(size=shape).astype(np.float32)
  return params
