"""The mBART / NLLB-200 (M2M100) encoder-decoder: a plain nn.Module.

Parameter paths mirror mT5's (encoder/layers_0/attention/query/kernel,
.../mlp/wi/kernel), so adapter target patterns and the contract carry over;
every projection and norm here also has a 'bias'.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lta.adapters.config import AdapterConfig
from lta.models import execution as execution_lib
from lta.models import adapter_layers
from lta.models import layers
from lta.models.bart.config import BartConfig
from lta.models.dropout import DropoutMasks
from lta.models.execution import ExecutionConfig
from lta.models.layers import BATCH, EMBED, LENGTH, MLP, VOCAB, constrain

Array = jax.Array
# mBART's learned table has two rows before position 0 (fairseq's offset).
LEARNED_POSITION_OFFSET = 2


def sinusoidal_positions(position_ids: Array, d_model: int,
                         pad_id: int) -> Array:
  """M2M100's table rows for `position_ids`: [sin | cos], zero at pad_id.

  float32 in the same order of operations as transformers' get_embedding.
  """
  half = d_model // 2
  step = np.float32(math.log(10000) / (half - 1))
  freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -step)
  angles = position_ids.astype(jnp.float32)[..., None] * freqs
  table = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  return jnp.where((position_ids == pad_id)[..., None], 0.0, table)


def counted_position_ids(real: Array, pad_id: int, start: Array | int = 0
                         ) -> Array:
  """M2M100's ids: pad_id + the count of real positions so far (pads:
  pad_id). `real` (batch, length) bool: non-pad tokens, and soft prompt
  slots. `start` is the number of tokens before them (a decoding cache's).
  """
  real = real.astype(jnp.int32)
  return (jnp.cumsum(real, axis=1) + start) * real + pad_id


class _Parts(nn.Module):
  """Shared constructor arguments of the encoder and decoder stacks."""
  config: BartConfig
  adapter: Optional[AdapterConfig]
  shared_embedding: nn.Module
  execution: ExecutionConfig = ExecutionConfig()

  @property
  def dtype(self):
    return jnp.dtype(self.config.dtype)

  @property
  def param_dtype(self):
    return jnp.dtype(self.config.param_dtype)

  def norm(self, name):
    return nn.LayerNorm(
        epsilon=self.config.layer_norm_epsilon, dtype=self.dtype,
        param_dtype=self.param_dtype, use_fast_variance=False,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones,
                                                (EMBED,)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                               (EMBED,)), name=name)

  def attention(self, name):
    c = self.config
    return layers.MultiHeadAttention(
        c.num_heads, c.d_kv, c.attention_dropout_rate, self.adapter,
        self.dtype, self.param_dtype, use_bias=True, scale_scores=True,
        dropout_masks=self.execution.dropout_masks, name=name)

  def mlp(self):
    c = self.config
    return MlpBlock(c.d_ff, c.activation, c.activation_dropout_rate,
                    self.adapter, self.dtype, self.param_dtype,
                    self.execution.dropout_masks, name="mlp")

  def dropout(self, x, deterministic):
    return layers.dropout(self.config.dropout_rate,
                          self.execution.dropout_masks)(
                              x, deterministic=deterministic)

  def layer_class(self, cls, static_argnums, decode=False):
    return execution_lib.remat_layer(cls, self.execution, static_argnums,
                                     decode)

  def embed(self, tokens, deterministic, start=0, prompt=False):
    """Scaled token embeddings plus positions (and mBART's LayerNorm).

    With `prompt`, a prompt adapter's soft prompt goes in front of the
    scaled embeddings and takes the first positions, as PEFT's
    inputs_embeds do in HF's MBart and M2M100 encoders.
    """
    c = self.config
    x = self.shared_embedding(tokens).astype(self.dtype) * c.embedding_scale
    real = tokens != c.pad_token_id
    if prompt:
      x = adapter_layers.prepend_prompt(self, self.adapter, x)
      real = jnp.pad(real, ((0, 0), (x.shape[1] - tokens.shape[1], 0)),
                     constant_values=True)
    if c.learned_positions:
      table = self.param(
          "position_embedding",
          nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                       (LENGTH, EMBED)),
          (c.max_position_embeddings + LEARNED_POSITION_OFFSET, c.d_model),
          self.param_dtype)
      position_ids = start + jnp.arange(x.shape[1])
      positions = jnp.take(table, position_ids + LEARNED_POSITION_OFFSET,
                           axis=0)[None]
    else:
      positions = sinusoidal_positions(
          counted_position_ids(real, c.pad_token_id, start), c.d_model,
          c.pad_token_id)
    x = x + positions.astype(self.dtype)
    if c.embedding_layer_norm:
      x = self.norm("embedding_norm")(x)
    return self.dropout(constrain(x, (BATCH, LENGTH, EMBED)), deterministic)


class MlpBlock(nn.Module):
  """fc1 -> GELU (exact) or ReLU -> fc2, both biased.

  dropout_rate is HF's activation_dropout, on the hidden activations.
  """
  d_ff: int
  activation: str
  dropout_rate: float
  adapter: Optional[AdapterConfig] = None
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  dropout_masks: DropoutMasks = DropoutMasks()

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    d_model = x.shape[-1]
    act = {"gelu": functools.partial(jax.nn.gelu, approximate=False),
           "relu": jax.nn.relu}[self.activation]
    h = layers.projection_of(self, self.d_ff, (EMBED, MLP),
                             nn.initializers.normal(d_model**-0.5), "wi",
                             use_bias=True)(x, deterministic)
    h = constrain(act(h), (BATCH, LENGTH, MLP))
    h = layers.dropout(self.dropout_rate, self.dropout_masks)(
        h, deterministic=deterministic)
    return layers.projection_of(self, d_model, (MLP, EMBED),
                                nn.initializers.normal(self.d_ff**-0.5), "wo",
                                use_bias=True)(h, deterministic)


class EncoderLayer(_Parts):

  @nn.compact
  def __call__(self, x, mask, deterministic):
    h = self.norm("pre_attention_layer_norm")(x)
    h = self.attention("attention")(h, h, jnp.zeros((), self.dtype), mask,
                                    deterministic=deterministic)
    h = adapter_layers.bottleneck_after(self, "attention", h)
    x = x + self.dropout(h, deterministic)
    h = self.norm("pre_mlp_layer_norm")(x)
    h = adapter_layers.bottleneck_after(self, "mlp",
                                        self.mlp()(h, deterministic))
    return constrain(x + self.dropout(h, deterministic),
                     (BATCH, LENGTH, EMBED))


class DecoderLayer(_Parts):

  @nn.compact
  def __call__(self, y, encoded, self_mask, cross_mask, deterministic,
               decode, position, max_decode_length):
    no_bias = jnp.zeros((), self.dtype)
    h = self.norm("pre_self_attention_layer_norm")(y)
    h = self.attention("self_attention")(
        h, h, no_bias, self_mask, decode=decode, cache_position=position,
        max_decode_length=max_decode_length, deterministic=deterministic)
    h = adapter_layers.bottleneck_after(self, "self_attention", h)
    y = y + self.dropout(h, deterministic)
    h = self.norm("pre_cross_attention_layer_norm")(y)
    h = self.attention("encoder_decoder_attention")(
        h, encoded, no_bias, cross_mask, is_cross=True, decode=decode,
        deterministic=deterministic)
    y = y + self.dropout(h, deterministic)
    h = self.norm("pre_mlp_layer_norm")(y)
    h = adapter_layers.bottleneck_after(self, "mlp",
                                        self.mlp()(h, deterministic))
    return constrain(y + self.dropout(h, deterministic),
                     (BATCH, LENGTH, EMBED))


class Encoder(_Parts):

  @nn.compact
  def __call__(self, tokens: Array, deterministic: bool = True) -> Array:
    x = self.embed(tokens, deterministic, prompt=True)
    mask = adapter_layers.encoder_key_mask(tokens, x.shape[1],
                                           self.config.pad_token_id)
    layer = self.layer_class(EncoderLayer, static_argnums=(3,))
    for i in range(self.config.num_encoder_layers):
      x = layer(self.config, self.adapter, self.shared_embedding,
                self.execution, name=f"layers_{i}")(x, mask, deterministic)
    return self.norm("encoder_norm")(x)


class Decoder(_Parts):

  @nn.compact
  def __call__(self, encoded: Optional[Array], encoder_tokens: Optional[Array],
               decoder_input_tokens: Optional[Array],
               deterministic: bool = True, decode: bool = False,
               max_decode_length: Optional[int] = None,
               output: str = "logits",
               hidden: Optional[Array] = None) -> Array:
    """Logits; or the final hidden states ('hidden'), or only the output
    layer applied to given hidden states ('head'), for a chunked loss."""
    if output == "head":
      return self._head(hidden)
    c = self.config
    q_len = decoder_input_tokens.shape[1]
    position = None
    if decode:
      # Encoder keys: the tokens after any soft prompt (always visible).
      position, k_len, cross_mask = layers.decoding_state(
          self, encoder_tokens, q_len, max_decode_length,
          lambda tokens: adapter_layers.encoder_key_mask(
              tokens, encoded.shape[1], c.pad_token_id))
      q_pos = position + jnp.arange(q_len)
    else:
      k_len, q_pos = q_len, jnp.arange(q_len)
      cross_mask = adapter_layers.encoder_key_mask(
          encoder_tokens, encoded.shape[1], c.pad_token_id)
    y = self.embed(decoder_input_tokens, deterministic,
                   0 if position is None else position)
    self_mask = layers.causal_mask(q_len, k_len, q_pos[0])
    layer = self.layer_class(DecoderLayer, static_argnums=(5, 6, 8),
                             decode=decode)
    for i in range(c.num_decoder_layers):
      y = layer(c, self.adapter, self.shared_embedding, self.execution,
                name=f"layers_{i}")(y, encoded, self_mask, cross_mask,
                                    deterministic, decode, position,
                                    max_decode_length)
    y = self.norm("decoder_norm")(y)
    return y if output == "hidden" else self._head(y)

  def _head(self, y):
    c = self.config
    logits = layers.tied_logits(self.shared_embedding, y)
    if c.final_logits_bias:
      logits = logits + self.param(
          "final_logits_bias",
          nn.with_logical_partitioning(nn.initializers.zeros, (VOCAB,)),
          (c.vocab_size,), self.param_dtype).astype(self.dtype)
    return constrain(logits.astype(jnp.float32), (BATCH, LENGTH, VOCAB))


class Transformer(nn.Module):
  """mBART / NLLB encoder-decoder; the interface of lta.models.mt5's."""
  config: BartConfig
  adapter: Optional[AdapterConfig] = None
  execution: ExecutionConfig = ExecutionConfig()

  def setup(self):
    c = self.config
    self.token_embedder = nn.Embed(
        c.vocab_size, c.d_model, dtype=jnp.dtype(c.dtype),
        param_dtype=jnp.dtype(c.param_dtype),
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(c.d_model**-0.5), (VOCAB, EMBED)))
    self.encoder = Encoder(c, self.adapter, self.token_embedder,
                           self.execution)
    self.decoder = Decoder(c, self.adapter, self.token_embedder,
                           self.execution)

  def encode(self, encoder_input_tokens: Array,
             enable_dropout: bool = False) -> Array:
    return self.encoder(encoder_input_tokens, deterministic=not enable_dropout)

  def decode(self, encoded: Optional[Array],
             encoder_input_tokens: Optional[Array],
             decoder_input_tokens: Array, enable_dropout: bool = False,
             decode: bool = False,
             max_decode_length: Optional[int] = None) -> Array:
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens,
                        deterministic=not enable_dropout, decode=decode,
                        max_decode_length=max_decode_length)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               enable_dropout: bool = False, output: str = "logits") -> Array:
    """Logits (batch, length, vocab); output='hidden': the decoder's final
    hidden states, before the output layer (see `head`)."""
    encoded = self.encode(encoder_input_tokens, enable_dropout)
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens,
                        deterministic=not enable_dropout, output=output)

  def head(self, hidden: Array, enable_dropout: bool = False) -> Array:
    """The output layer alone: float32 logits of decoder hidden states."""
    del enable_dropout  # BART's head has no dropout.
    return self.decoder(None, None, None, output="head", hidden=hidden)
