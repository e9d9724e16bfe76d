"""The T5.1.1 / mT5 encoder-decoder network (a plain nn.Module, no task logic)."""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lta.models import adapter_layers
from lta.models import execution as execution_lib
from lta.models import layers
from lta.models.execution import ExecutionConfig
from lta.models.mt5.config import T5Config
from lta.models.layers import BATCH, EMBED, LENGTH, VOCAB, constrain
from lta.adapters.config import AdapterConfig

Array = jax.Array


class _Parts(nn.Module):
  """Shared constructor arguments of the encoder and decoder stacks."""
  config: T5Config
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
    return layers.RMSNorm(self.config.layer_norm_epsilon, self.dtype,
                          self.param_dtype, name=name)

  def attention(self, name):
    c = self.config
    return layers.MultiHeadAttention(
        c.num_heads, c.d_kv, c.dropout_rate, self.adapter, self.dtype,
        self.param_dtype,
        dropout_masks=self.execution.dropout_masks, name=name)

  def mlp(self):
    c = self.config
    return layers.MlpBlock(c.d_ff, c.is_gated,
                           "gelu" if "gelu" in c.feed_forward_proj else "relu",
                           c.dropout_rate, self.adapter, self.dtype,
                           self.param_dtype,
                           dropout_masks=self.execution.dropout_masks,
                           name="mlp")

  def dropout(self, x, deterministic):
    return layers.dropout(self.config.dropout_rate,
                          self.execution.dropout_masks)(
                              x, deterministic=deterministic)

  def layer_class(self, cls, static_argnums, decode=False):
    return execution_lib.remat_layer(cls, self.execution, static_argnums,
                                     decode)

  def relpos(self, bidirectional):
    c = self.config
    return layers.RelativePositionBias(
        c.relative_attention_num_buckets, c.relative_attention_max_distance,
        c.num_heads, bidirectional, self.dtype, self.param_dtype,
        name="relpos_bias")

  def embed(self, tokens, deterministic, prompt=False):
    """Embedded tokens; with `prompt`, a prompt adapter's soft prompt in
    front (before dropout, as PEFT prepends it to the input embeddings)."""
    x = self.shared_embedding(tokens).astype(self.dtype)
    if prompt:
      x = adapter_layers.prepend_prompt(self, self.adapter, x)
    return self.dropout(constrain(x, (BATCH, LENGTH, EMBED)), deterministic)


class EncoderLayer(_Parts):

  @nn.compact
  def __call__(self, x, bias, mask, deterministic):
    h = self.norm("pre_attention_layer_norm")(x)
    h = self.attention("attention")(h, h, bias, mask,
                                    deterministic=deterministic)
    h = adapter_layers.bottleneck_after(self, "attention", h)
    x = x + self.dropout(h, deterministic)
    h = self.norm("pre_mlp_layer_norm")(x)
    h = adapter_layers.bottleneck_after(self, "mlp", self.mlp()(h,
                                                               deterministic))
    x = x + self.dropout(h, deterministic)
    return constrain(x, (BATCH, LENGTH, EMBED))


class DecoderLayer(_Parts):

  @nn.compact
  def __call__(self, y, encoded, bias, self_mask, cross_mask, deterministic,
               decode, position, max_decode_length):
    h = self.norm("pre_self_attention_layer_norm")(y)
    h = self.attention("self_attention")(
        h, h, bias, self_mask, decode=decode, cache_position=position,
        max_decode_length=max_decode_length, deterministic=deterministic)
    h = adapter_layers.bottleneck_after(self, "self_attention", h)
    y = y + self.dropout(h, deterministic)
    h = self.norm("pre_cross_attention_layer_norm")(y)
    h = self.attention("encoder_decoder_attention")(
        h, encoded, jnp.zeros((), self.dtype), cross_mask, is_cross=True,
        decode=decode, deterministic=deterministic)
    y = y + self.dropout(h, deterministic)
    h = self.norm("pre_mlp_layer_norm")(y)
    h = adapter_layers.bottleneck_after(self, "mlp", self.mlp()(h,
                                                               deterministic))
    y = y + self.dropout(h, deterministic)
    return constrain(y, (BATCH, LENGTH, EMBED))


class Encoder(_Parts):

  @nn.compact
  def __call__(self, tokens: Array, deterministic: bool = True) -> Array:
    x = self.embed(tokens, deterministic, prompt=True)
    positions = jnp.arange(x.shape[1])
    bias = self.relpos(bidirectional=True)(positions, positions)
    mask = adapter_layers.encoder_key_mask(tokens, x.shape[1])
    layer = self.layer_class(EncoderLayer, static_argnums=(4,))
    for i in range(self.config.num_encoder_layers):
      x = layer(self.config, self.adapter, self.shared_embedding,
                self.execution, name=f"layers_{i}")(x, bias, mask,
                                                    deterministic)
    x = self.norm("encoder_norm")(x)
    return self.dropout(x, deterministic)


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
      return self._head(hidden, deterministic)
    c = self.config
    q_len = decoder_input_tokens.shape[1]
    y = self.embed(decoder_input_tokens, deterministic)
    position = None
    if decode:
      position, k_len, cross_mask = layers.decoding_state(
          self, encoder_tokens, q_len, max_decode_length,
          lambda tokens: adapter_layers.encoder_key_mask(tokens,
                                                         encoded.shape[1]))
      q_pos = position + jnp.arange(q_len)
    else:
      k_len, q_pos = q_len, jnp.arange(q_len)
      cross_mask = adapter_layers.encoder_key_mask(encoder_tokens,
                                                   encoded.shape[1])
    k_pos = jnp.arange(k_len)
    self_mask = (k_pos[None, :] <= q_pos[:, None])[None, None]
    bias = self.relpos(bidirectional=False)(q_pos, k_pos)
    layer = self.layer_class(DecoderLayer, static_argnums=(6, 7, 9),
                             decode=decode)
    for i in range(c.num_decoder_layers):
      y = layer(c, self.adapter, self.shared_embedding, self.execution,
                name=f"layers_{i}")(y, encoded, bias, self_mask, cross_mask,
                                    deterministic, decode, position,
                                    max_decode_length)
    y = self.norm("decoder_norm")(y)
    y = self.dropout(y, deterministic)
    return y if output == "hidden" else self._head(y, deterministic)

  def _head(self, y, deterministic):
    c = self.config
    if c.tie_word_embeddings:
      # T5 v1.0 rescales before the tied head.
      logits = layers.tied_logits(self.shared_embedding,
                                  y * c.d_model**-0.5)
    else:
      logits = layers.Projection(
          c.vocab_size, (EMBED, VOCAB),
          kernel_init=nn.initializers.normal(c.d_model**-0.5),
          adapter=self.adapter, dtype=self.dtype,
          param_dtype=self.param_dtype,
          dropout_masks=self.execution.dropout_masks,
          name="logits_dense")(y, deterministic)
    return constrain(logits.astype(jnp.float32), (BATCH, LENGTH, VOCAB))


class Transformer(nn.Module):
  """mT5 encoder-decoder. Variables: 'params' (base), optional 'adapters'."""
  config: T5Config
  adapter: Optional[AdapterConfig] = None
  execution: ExecutionConfig = ExecutionConfig()

  def setup(self):
    c = self.config
    self.token_embedder = nn.Embed(
        c.vocab_size, c.d_model, dtype=jnp.dtype(c.dtype),
        param_dtype=jnp.dtype(c.param_dtype),
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(1.0), (VOCAB, EMBED)))
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
    return self.decoder(None, None, None, deterministic=not enable_dropout,
                        output="head", hidden=hidden)
