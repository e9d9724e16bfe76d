"""Every base parameter lta's network expects, with its shape.

The one table the importers check against (docs/internals.md spells it out):
a checkpoint must fill exactly these paths with exactly these shapes.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from lta.models.mt5.config import T5Config

ATTENTION = ("query", "key", "value", "out")


def mlp_names(config: T5Config) -> tuple[str, ...]:
  return ("wi_0", "wi_1", "wo") if config.is_gated else ("wi", "wo")


def _attention(prefix: str, c: T5Config) -> dict[str, tuple[int, ...]]:
  inner = c.inner_dim
  return {f"{prefix}/{p}/kernel": ((inner, c.d_model) if p == "out" else
                                   (c.d_model, inner)) for p in ATTENTION}


def _mlp(prefix: str, c: T5Config) -> dict[str, tuple[int, ...]]:
  return {f"{prefix}/mlp/{m}/kernel": ((c.d_ff, c.d_model) if m == "wo" else
                                       (c.d_model, c.d_ff))
          for m in mlp_names(c)}


def param_shapes(config: T5Config) -> dict[str, tuple[int, ...]]:
  """{'encoder/layers_0/attention/query/kernel': (d_model, inner), ...}."""
  c = config
  scale = (c.d_model,)
  relpos = (c.num_heads, c.relative_attention_num_buckets)
  shapes = {"token_embedder/embedding": (c.vocab_size, c.d_model),
            "encoder/relpos_bias/rel_embedding": relpos,
            "encoder/encoder_norm/scale": scale,
            "decoder/relpos_bias/rel_embedding": relpos,
            "decoder/decoder_norm/scale": scale}
  for i in range(c.num_encoder_layers):
    p = f"encoder/layers_{i}"
    shapes[f"{p}/pre_attention_layer_norm/scale"] = scale
    shapes.update(_attention(f"{p}/attention", c))
    shapes[f"{p}/pre_mlp_layer_norm/scale"] = scale
    shapes.update(_mlp(p, c))
  for i in range(c.num_decoder_layers):
    p = f"decoder/layers_{i}"
    shapes[f"{p}/pre_self_attention_layer_norm/scale"] = scale
    shapes.update(_attention(f"{p}/self_attention", c))
    shapes[f"{p}/pre_cross_attention_layer_norm/scale"] = scale
    shapes.update(_attention(f"{p}/encoder_decoder_attention", c))
    shapes[f"{p}/pre_mlp_layer_norm/scale"] = scale
    shapes.update(_mlp(p, c))
  if not c.tie_word_embeddings:
    shapes["decoder/logits_dense/kernel"] = (c.d_model, c.vocab_size)
  return shapes




def check_complete(flat: Mapping[str, np.ndarray], config: T5Config,
                   source: str, origin: Mapping[str, str] | None = None):
  """Raises unless `flat` has exactly the expected paths and shapes.

  `origin` maps an lta path to the checkpoint name it came from, so errors
  can name what the user will find in the file.
  """
  origin = origin or {}
  expected = param_shapes(config)
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise ValueError(f"{source}: no value for {len(missing)} parameter(s) "
                     f"lta needs: {missing[:20]}")
  unknown = sorted(set(flat) - set(expected))
  if unknown:
    raise ValueError(f"{source}: parameter(s) that {config.name} does not "
                     f"have: {[origin.get(p, p) for p in unknown][:20]}")
  for path, shape in expected.items():
    found = tuple(np.shape(flat[path]))
    if found != shape:
      raise ValueError(f"{source}: {origin.get(path, path)} has shape {found}; "
                       f"expected {shape} for lta's {path}")
