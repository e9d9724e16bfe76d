"""The one frozen config that builds a decoder-only network (Llama, Qwen, Gemma).

A family is a set of switches on one network (lta/models/decoder/network.py):

  family   qkv_bias qk_norm gemma_norms embed_scale softcaps  sliding window
  llama    -        -       -           -           -         -
  qwen2    yes      -       -           -           -         -
  qwen3    -        yes     -           -           -         -
  gemma2   -        -       yes         yes         yes       alternate layers
  gemma3   -        yes     yes         yes         -         5 of every 6 layers

`family` names the HF architecture an export writes (lta/checkpoints/
hf_decoder.py); the switches alone decide the computation. Gin binds this
dataclass (gin/models/{llama,qwen,gemma}*.gin).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import gin

from lta import errors
from lta.models.config_record import ConfigRecord

FAMILIES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3")
ACTIVATIONS = ("silu", "gelu_tanh")
ROPE_TYPES = ("default", "linear", "llama3")
LAYER_TYPES = ("full_attention", "sliding_attention")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DecoderConfig(ConfigRecord):
  """Hyper-parameters of a decoder-only transformer. Defaults: a tiny Llama.

  Attention: num_heads query heads of head_dim share num_kv_heads key/value
  heads (grouped-query attention); scores are scaled by
  query_pre_attn_scalar ** -0.5 (head_dim when None, Gemma sets its own).

  Rotary embeddings (HF's rotate-half layout): base rope_theta, scaled per
  rope_type: 'default' (none), 'linear' (frequencies / rope_factor) or
  'llama3' (Llama 3.1's banded rule with rope_low_freq_factor,
  rope_high_freq_factor and rope_original_max_position). Layers of type
  'sliding_attention' use local_rope_theta with no scaling when it is set
  (Gemma 3), else the global rope.

  layer_types: one of LAYER_TYPES per layer, () for all full. A sliding layer
  lets the query at i see keys j with i - sliding_window < j <= i.
  sliding_window_pattern N (gin shorthand, HF's rule): layers N, 2N, ...
  (1-based) are full, the rest sliding (Gemma 2: 2, Gemma 3: 6); it is
  expanded into layer_types and then cleared, so configs compare equal.
  """
  family: str = "llama"
  vocab_size: int = 256
  hidden_size: int = 32
  intermediate_size: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 8
  rms_norm_eps: float = 1e-6
  activation: str = "silu"
  qkv_bias: bool = False
  qk_norm: bool = False
  # Gemma: RMSNorm scales by (1 + w), and norms follow attention and MLP too.
  gemma_norms: bool = False
  # Gemma: embeddings are multiplied by sqrt(hidden_size).
  scale_embeddings: bool = False
  query_pre_attn_scalar: Optional[float] = None
  attn_logit_softcap: Optional[float] = None
  final_logit_softcap: Optional[float] = None
  tie_word_embeddings: bool = True
  rope_theta: float = 10000.0
  rope_type: str = "default"
  rope_factor: float = 1.0
  rope_low_freq_factor: float = 1.0
  rope_high_freq_factor: float = 4.0
  rope_original_max_position: int = 8192
  local_rope_theta: Optional[float] = None
  sliding_window: Optional[int] = None
  layer_types: tuple[str, ...] = ()
  sliding_window_pattern: Optional[int] = None
  max_position_embeddings: int = 8192
  dropout_rate: float = 0.0
  dtype: str = "float32"  # activation dtype
  param_dtype: str = "float32"
  pad_token_id: int = 0
  eos_token_id: int = 1
  bos_token_id: int = 2
  name: str = "decoder-tiny"

  def __post_init__(self):
    if isinstance(self.layer_types, list):
      object.__setattr__(self, "layer_types", tuple(self.layer_types))
    self._expand_sliding_window_pattern()
    choices = (("family", FAMILIES), ("activation", ACTIVATIONS),
               ("rope_type", ROPE_TYPES))
    for field, allowed in choices:
      value = getattr(self, field)
      if value not in allowed:
        raise errors.ConfigError(
            f"DecoderConfig.{field}={value!r}; expected one of "
            f"{list(allowed)}{errors.did_you_mean(str(value), allowed)}")
    for field in ("vocab_size", "hidden_size", "intermediate_size",
                  "num_layers", "num_heads", "num_kv_heads", "head_dim"):
      if getattr(self, field) <= 0:
        raise errors.ConfigError(f"DecoderConfig.{field} must be positive, "
                                 f"got {getattr(self, field)}")
    if self.num_heads % self.num_kv_heads:
      raise errors.ConfigError(
          f"DecoderConfig.num_heads={self.num_heads} must be a multiple of "
          f"num_kv_heads={self.num_kv_heads} (grouped-query attention)")
    self._check_layer_types()

  def _expand_sliding_window_pattern(self):
    pattern = self.sliding_window_pattern
    if pattern is None:
      return
    if self.layer_types or pattern < 1:
      raise errors.ConfigError(
          f"DecoderConfig.sliding_window_pattern={pattern!r} needs a "
          "positive value and no layer_types (set one or the other)")
    object.__setattr__(self, "layer_types", tuple(
        "sliding_attention" if (i + 1) % pattern else "full_attention"
        for i in range(self.num_layers)))
    object.__setattr__(self, "sliding_window_pattern", None)

  def _check_layer_types(self):
    if not self.layer_types:
      return
    if len(self.layer_types) != self.num_layers:
      raise errors.ConfigError(
          f"DecoderConfig.layer_types has {len(self.layer_types)} entries; "
          f"num_layers={self.num_layers}")
    for kind in self.layer_types:
      if kind not in LAYER_TYPES:
        raise errors.ConfigError(
            f"DecoderConfig.layer_types holds {kind!r}; expected one of "
            f"{list(LAYER_TYPES)}{errors.did_you_mean(str(kind), LAYER_TYPES)}")
    if "sliding_attention" in self.layer_types and not self.sliding_window:
      raise errors.ConfigError(
          "DecoderConfig.layer_types has sliding layers but sliding_window "
          f"is {self.sliding_window!r}; set a positive window")

  def is_sliding(self, layer: int) -> bool:
    return bool(self.layer_types) and (
        self.layer_types[layer] == "sliding_attention")

  @property
  def query_dim(self) -> int:
    return self.num_heads * self.head_dim

  @property
  def kv_dim(self) -> int:
    return self.num_kv_heads * self.head_dim

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["layer_types"] = list(self.layer_types)
    return d
