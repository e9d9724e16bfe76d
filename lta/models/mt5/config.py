"""The one frozen config that builds the T5.1.1 / mT5 network."""

from __future__ import annotations

import dataclasses

import gin

from lta import errors
from lta.models.config_record import ConfigRecord


@gin.configurable
@dataclasses.dataclass(frozen=True)
class T5Config(ConfigRecord):
  """Hyper-parameters of a T5.1.1 / mT5 encoder-decoder.

  Defaults are mT5-small. Attention projections are (d_model, num_heads*d_kv),
  which need not be square.
  """
  vocab_size: int = 250112
  d_model: int = 512
  d_kv: int = 64
  d_ff: int = 1024
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.1
  layer_norm_epsilon: float = 1e-6
  # T5.1.1 / mT5 use gated-GELU (tanh approximation) and an untied head.
  feed_forward_proj: str = "gated-gelu"
  tie_word_embeddings: bool = False
  dtype: str = "float32"  # activation dtype
  param_dtype: str = "float32"
  pad_token_id: int = 0
  eos_token_id: int = 1
  decoder_start_token_id: int = 0
  name: str = "mt5-small"

  def __post_init__(self):
    if self.feed_forward_proj not in ("gated-gelu", "relu", "gated-relu"):
      raise errors.ConfigError(
          f"T5Config.feed_forward_proj={self.feed_forward_proj!r}; expected "
          "'gated-gelu' (T5.1.1/mT5), 'gated-relu' or 'relu' (original T5).")
    for field in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads",
                  "num_encoder_layers", "num_decoder_layers"):
      if getattr(self, field) <= 0:
        raise errors.ConfigError(f"T5Config.{field} must be positive, got "
                                 f"{getattr(self, field)}")

  @property
  def inner_dim(self) -> int:
    return self.num_heads * self.d_kv

  @property
  def is_gated(self) -> bool:
    return self.feed_forward_proj.startswith("gated")

