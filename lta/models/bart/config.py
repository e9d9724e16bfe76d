"""The one frozen config that builds an mBART or NLLB-200 (M2M100) network."""

from __future__ import annotations

import dataclasses

import gin

from lta import errors
from lta.models.config_record import ConfigRecord

# HF model_type -> how the two variants differ; everything else is shared.
MBART, M2M100 = "mbart", "m2m_100"
MODEL_TYPES = (MBART, M2M100)
ACTIVATIONS = ("gelu", "relu")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class BartConfig(ConfigRecord):
  """Hyper-parameters of a pre-LayerNorm BART-family encoder-decoder.

  model_type 'mbart' (mBART-50): learned positions read at position + 2, a
  LayerNorm on the embeddings, a final_logits_bias. 'm2m_100' (NLLB-200):
  sinusoidal positions counted over non-pad tokens, none of those. Both
  scale embeddings by sqrt(d_model) (scale_embedding), tie the head to the
  embeddings and end each stack with a LayerNorm. Ids follow fairseq:
  bos 0, pad 1, eos 2, and decoding starts from eos. Defaults are
  NLLB-200 distilled 600M.
  """
  model_type: str = M2M100
  vocab_size: int = 256206
  d_model: int = 1024
  num_heads: int = 16
  d_ff: int = 4096
  num_encoder_layers: int = 12
  num_decoder_layers: int = 12
  max_position_embeddings: int = 1024
  activation: str = "relu"
  scale_embedding: bool = True
  layer_norm_epsilon: float = 1e-5
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  activation_dropout_rate: float = 0.0
  dtype: str = "float32"  # activation dtype
  param_dtype: str = "float32"
  bos_token_id: int = 0
  pad_token_id: int = 1
  eos_token_id: int = 2
  decoder_start_token_id: int = 2
  name: str = "nllb-200-distilled-600M"

  def __post_init__(self):
    for field, allowed in (("model_type", MODEL_TYPES),
                           ("activation", ACTIVATIONS)):
      value = getattr(self, field)
      if value not in allowed:
        raise errors.ConfigError(
            f"BartConfig.{field}={value!r}; expected one of {allowed}"
            f"{errors.did_you_mean(str(value), allowed)}")
    for field in ("vocab_size", "d_model", "num_heads", "d_ff",
                  "num_encoder_layers", "num_decoder_layers",
                  "max_position_embeddings"):
      if getattr(self, field) <= 0:
        raise errors.ConfigError(f"BartConfig.{field} must be positive, got "
                                 f"{getattr(self, field)}")
    if self.d_model % self.num_heads:
      raise errors.ConfigError(
          f"BartConfig.d_model={self.d_model} is not a multiple of "
          f"num_heads={self.num_heads}")
    if self.model_type == M2M100 and self.d_model % 2:
      raise errors.ConfigError(
          f"BartConfig.d_model={self.d_model} must be even for sinusoidal "
          "positions")

  @property
  def d_kv(self) -> int:
    return self.d_model // self.num_heads

  @property
  def learned_positions(self) -> bool:
    return self.model_type == MBART

  @property
  def embedding_layer_norm(self) -> bool:
    return self.model_type == MBART

  @property
  def final_logits_bias(self) -> bool:
    return self.model_type == MBART

  @property
  def embedding_scale(self) -> float:
    return self.d_model**0.5 if self.scale_embedding else 1.0

  TRANSIENT_FIELDS = ("dropout_rate", "attention_dropout_rate",
                      "activation_dropout_rate", "dtype", "name")
