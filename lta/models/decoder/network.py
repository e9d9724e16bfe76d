"""The decoder-only network (Llama, Qwen2/3, Gemma 2/3): an nn.Module, no task logic.

Parameters (`params`; adapters, when present, sit under the same paths in
'adapters'), with logical axis names from lta.models.layers:

  token_embedder/embedding                       (vocab, embed)
  decoder/layers_{i}/pre_attention_norm/scale    (embed,)
  decoder/layers_{i}/attention/{query,key,value}/kernel (embed, joined_kv)
                                    .../bias     (joined_kv,)  qkv_bias only
  decoder/layers_{i}/attention/out/kernel        (joined_kv, embed)
  decoder/layers_{i}/attention/{query,key}_norm/scale (head_dim,)  qk_norm
  decoder/layers_{i}/post_attention_norm/scale   (embed,)      gemma_norms
  decoder/layers_{i}/pre_mlp_norm/scale          (embed,)
  decoder/layers_{i}/mlp/{wi_0,wi_1}/kernel      (embed, mlp)  gate, up
  decoder/layers_{i}/mlp/wo/kernel               (mlp, embed)
  decoder/layers_{i}/post_mlp_norm/scale         (embed,)      gemma_norms
  decoder/decoder_norm/scale                     (embed,)
  decoder/logits_dense/kernel                    (embed, vocab) untied only

Every projection is a layers.Projection, so AdapterConfig's default
ATTENTION_TARGETS / MLP_TARGETS regexes match these paths unchanged. The
adapter kinds that add layers (lta.models.adapter_layers) sit at
decoder/prompt (a soft prompt in front of the tokens; `_prepend_prompt`)
and decoder/layers_{i}/{attention,mlp}_adapter (bottlenecks).

Calling convention, `DecoderOnly.__call__(tokens, ...)` -> float32 logits
(batch, length, vocab):
  input_mask (batch, length) bool: which tokens are real; padding is never
    attended to. None: every token is real.
  positions (batch, length) int: rotary positions; default 0..length-1
    (HF's when it is given no position_ids). With decode=True they are
    counted from the real tokens instead (see below).
  segment_ids (batch, length) int: packed examples; a token attends only
    within its segment (0 is padding). With segment_ids, pass positions.
  prefix_mask (batch, length) bool: tokens of a prefix that attend to each
    other in both directions (T5X's prefix LM); the rest stay causal. With
    decode=True, on the prefill call only (the prompt's prefix).
  decode=True: cached decoding of left-padded rows. The first call (the
    prefill of a left-padded prompt; max_decode_length sets the cache size)
    creates the 'cache' collection; each later call appends its tokens
    (usually one per row). Rotary positions continue from each row's real
    token count, so left padding shifts nothing (HF's cumsum(mask) - 1).

Attention sees key slot j from query slot i iff j <= i, key j is real (and
in i's segment), and, in a sliding layer, i - sliding_window < j.
"""

from __future__ import annotations

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lta import errors
from lta.adapters.config import AdapterConfig
from lta.models import execution as execution_lib
from lta.models import adapter_layers
from lta.models import layers
from lta.models.decoder.config import DecoderConfig
from lta.models.execution import ExecutionConfig
from lta.models.layers import BATCH, EMBED, LENGTH, VOCAB, constrain

Array = jax.Array


class DecoderLayer(nn.Module):
  config: DecoderConfig
  adapter: Optional[AdapterConfig]
  sliding: bool
  execution: ExecutionConfig = ExecutionConfig()

  @property
  def dtype(self):  # of the bottleneck adapters' compute
    return jnp.dtype(self.config.dtype)

  def _norm(self, name):
    c = self.config
    return layers.RMSNorm(c.rms_norm_eps, jnp.dtype(c.dtype),
                          jnp.dtype(c.param_dtype), c.gemma_norms, name=name)

  @nn.compact
  def __call__(self, x, rope, mask, deterministic, decode, cache_index,
               max_decode_length):
    c = self.config
    dtype, param_dtype = jnp.dtype(c.dtype), jnp.dtype(c.param_dtype)
    masks = self.execution.dropout_masks
    drop = layers.dropout(c.dropout_rate, masks)
    h = self._norm("pre_attention_norm")(x)
    h = layers.GroupedQueryAttention(
        c.num_heads, c.num_kv_heads, c.head_dim,
        query_scale=(c.query_pre_attn_scalar or c.head_dim)**-0.5,
        qkv_bias=c.qkv_bias, qk_norm=c.qk_norm, norm_plus_one=c.gemma_norms,
        norm_epsilon=c.rms_norm_eps, softcap=c.attn_logit_softcap,
        dropout_rate=c.dropout_rate, adapter=self.adapter, dtype=dtype,
        param_dtype=param_dtype, dropout_masks=masks, name="attention")(
            h, rope, mask, decode=decode, cache_index=cache_index,
            max_decode_length=max_decode_length, deterministic=deterministic)
    if c.gemma_norms:
      h = self._norm("post_attention_norm")(h)
    # Bottlenecks read each sublayer's output as it joins the residual.
    h = adapter_layers.bottleneck_after(self, "attention", h)
    x = x + drop(h, deterministic=deterministic)
    h = self._norm("pre_mlp_norm")(x)
    h = layers.MlpBlock(
        c.intermediate_size, gated=True,
        activation="silu" if c.activation == "silu" else "gelu",
        dropout_rate=c.dropout_rate, adapter=self.adapter, dtype=dtype,
        param_dtype=param_dtype, dropout_masks=masks, name="mlp")(
            h, deterministic)
    if c.gemma_norms:
      h = self._norm("post_mlp_norm")(h)
    h = adapter_layers.bottleneck_after(self, "mlp", h)
    x = x + drop(h, deterministic=deterministic)
    return constrain(x, (BATCH, LENGTH, EMBED))


def attention_mask(query_slots: Array, key_slots: Array, key_real: Array,
                   window: Optional[int],
                   same_segment: Optional[Array] = None,
                   bidirectional: Optional[Array] = None) -> Array:
  """(batch, 1, q, k) bool; slots are int (q,) / (k,), key_real (batch, k)."""
  rel = query_slots[:, None] - key_slots[None, :]
  visible = rel >= 0
  if window is not None:
    visible = visible & (rel < window)
  visible = visible[None] & key_real[:, None, :]
  if bidirectional is not None:
    visible = visible | bidirectional
  if same_segment is not None:
    visible = visible & same_segment
  return visible[:, None]


class Decoder(nn.Module):
  """The layer stack, final norm and head (parameter scope 'decoder').

  output: 'logits'; 'hidden', the final hidden states before the head; or
  'head', the head alone applied to `hidden` (for a chunked loss).
  """
  config: DecoderConfig
  adapter: Optional[AdapterConfig]
  shared_embedding: nn.Module
  execution: ExecutionConfig = ExecutionConfig()

  def dropout(self, x, deterministic):
    return layers.dropout(self.config.dropout_rate,
                          self.execution.dropout_masks)(
                              x, deterministic=deterministic)

  @nn.compact
  def __call__(self, tokens, input_mask, positions, segment_ids, prefix_mask,
               enable_dropout, decode, max_decode_length, output="logits",
               hidden=None):
    c = self.config
    deterministic = not enable_dropout
    if output == "head":
      return self._head(hidden, deterministic)
    if input_mask is None:
      input_mask = jnp.ones(tokens.shape, jnp.bool_)
    input_mask = input_mask.astype(jnp.bool_)
    x = self.shared_embedding(tokens).astype(jnp.dtype(c.dtype))
    # As in HF: Gemma 2 scales the embeddings it is given, a soft prompt
    # included; Gemma 3 scales in its embedding layer, before the prompt.
    scale_after_prompt = c.family == "gemma2"
    if not scale_after_prompt:
      x = self._scaled(x)
    prompt_slots = 0
    if not (decode and self.has_variable("cache", "index")):
      x, input_mask, positions, prefix_mask, max_decode_length = (
          self._prepend_prompt(x, input_mask, positions, segment_ids,
                               prefix_mask, max_decode_length))
      prompt_slots = x.shape[1] - tokens.shape[1]
    if scale_after_prompt:
      x = self._scaled(x)
    length = x.shape[1]
    if decode:
      if segment_ids is not None:
        raise ValueError("Cached decoding takes no segment_ids: it decodes "
                         "one left-padded row each.")
      if prefix_mask is not None and self.has_variable("cache", "index"):
        raise ValueError("Cached decoding takes a prefix_mask on the "
                         "prefill call only.")
      positions, key_real, first = self._advance_cache(input_mask,
                                                       max_decode_length)
      query_slots = first + jnp.arange(length)
      key_slots = jnp.arange(key_real.shape[1])
      same_segment = bidirectional = None
      if prefix_mask is not None:  # the prefill: slots 0..length-1
        prefix = prefix_mask.astype(jnp.bool_) & input_mask
        keys = jnp.pad(prefix, ((0, 0), (0, key_real.shape[1] - length)))
        bidirectional = prefix[:, :, None] & keys[:, None, :]
    else:
      first = None
      if positions is None:
        positions = jnp.broadcast_to(jnp.arange(length), input_mask.shape)
      query_slots = key_slots = jnp.arange(length)
      key_real = input_mask
      same_segment = bidirectional = None
      if segment_ids is not None:
        same_segment = ((segment_ids[:, :, None] == segment_ids[:, None, :])
                        & (segment_ids[:, None, :] > 0))
      if prefix_mask is not None:
        prefix = prefix_mask.astype(jnp.bool_) & input_mask
        bidirectional = prefix[:, :, None] & prefix[:, None, :]
    x = self.dropout(constrain(x, (BATCH, LENGTH, EMBED)), deterministic)
    ropes = self._ropes(positions)
    masks = {}
    # static_argnums: deterministic, decode, max_decode_length.
    layer = execution_lib.remat_layer(DecoderLayer, self.execution, (4, 5, 7),
                                      decode)
    for i in range(c.num_layers):
      sliding = c.is_sliding(i)
      if sliding not in masks:
        masks[sliding] = attention_mask(
            query_slots, key_slots, key_real,
            c.sliding_window if sliding else None, same_segment,
            bidirectional)
      x = layer(c, self.adapter, sliding, self.execution,
                name=f"layers_{i}")(x, ropes[sliding], masks[sliding],
                                    deterministic, decode, first,
                                    max_decode_length)
    x = layers.RMSNorm(c.rms_norm_eps, jnp.dtype(c.dtype),
                       jnp.dtype(c.param_dtype), c.gemma_norms,
                       name="decoder_norm")(x[:, prompt_slots:])
    x = self.dropout(x, deterministic)
    return x if output == "hidden" else self._head(x, deterministic)

  def _head(self, x, deterministic):
    c = self.config
    if c.tie_word_embeddings:
      logits = layers.tied_logits(self.shared_embedding, x)
    else:
      logits = layers.Projection(
          c.vocab_size, (EMBED, VOCAB),
          kernel_init=nn.initializers.normal(c.hidden_size**-0.5),
          adapter=self.adapter, dtype=jnp.dtype(c.dtype),
          param_dtype=jnp.dtype(c.param_dtype),
          dropout_masks=self.execution.dropout_masks,
          name="logits_dense")(x, deterministic)
    logits = layers.soft_cap(logits.astype(jnp.float32),
                             c.final_logit_softcap)
    return constrain(logits, (BATCH, LENGTH, VOCAB))

  def _scaled(self, x):
    c = self.config
    if not c.scale_embeddings:
      return x
    return x * jnp.asarray(math.sqrt(c.hidden_size), x.dtype)

  def _prepend_prompt(self, x, input_mask, positions, segment_ids,
                      prefix_mask, max_decode_length):
    """A prompt adapter's soft prompt in front of the embedded tokens
    (PEFT's CAUSAL_LM prompt tuning), with every per-token input widened
    to match: the prompt is real, first in position and part of a prefix.
    Cached decoding calls this at the prefill only, whose cache gets room
    for the prompt's slots."""
    embedded = x
    x = adapter_layers.prepend_prompt(self, self.adapter, x)
    n = x.shape[1] - embedded.shape[1]
    if not n:
      return x, input_mask, positions, prefix_mask, max_decode_length
    if segment_ids is not None:
      raise errors.ConfigError(
          "a prompt adapter on a decoder-only model takes unpacked batches: "
          "set DecoderObjective.pack=False")
    front = ((0, 0), (n, 0))
    input_mask = jnp.pad(input_mask, front, constant_values=True)
    if positions is not None:
      first = jnp.broadcast_to(jnp.arange(n, dtype=positions.dtype),
                               (positions.shape[0], n))
      positions = jnp.concatenate([first, positions + n], axis=1)
    if prefix_mask is not None:
      prefix_mask = jnp.pad(prefix_mask.astype(jnp.bool_), front,
                            constant_values=True)
    if max_decode_length is not None:
      max_decode_length += n
    return x, input_mask, positions, prefix_mask, max_decode_length

  def _ropes(self, positions):
    """{sliding?: (cos, sin)}: Gemma 3's sliding layers have their own."""
    c = self.config
    global_freq = layers.rope_inverse_frequencies(
        c.head_dim, c.rope_theta, c.rope_type, c.rope_factor,
        c.rope_low_freq_factor, c.rope_high_freq_factor,
        c.rope_original_max_position)
    ropes = {False: layers.rope_tables(positions, global_freq)}
    if c.local_rope_theta is None:
      ropes[True] = ropes[False]
    else:
      ropes[True] = layers.rope_tables(positions, layers.rope_inverse_frequencies(
          c.head_dim, c.local_rope_theta))
    return ropes

  def _advance_cache(self, input_mask, max_decode_length):
    """Appends this call's tokens to the cache's bookkeeping.

    Returns (rotary positions, which key slots hold real tokens, the first
    slot written now). The cache holds 'index' (next free slot, shared by
    all rows), 'key_real' (batch, slots) and 'next_position' (batch,).
    """
    batch, length = input_mask.shape
    if not self.has_variable("cache", "index") and max_decode_length is None:
      raise ValueError("The prefill call of cached decoding needs "
                       "max_decode_length.")
    index = self.variable("cache", "index", jnp.zeros, (), jnp.int32)
    key_real = self.variable("cache", "key_real", jnp.zeros,
                             (batch, max_decode_length or 0), jnp.bool_)
    next_position = self.variable("cache", "next_position", jnp.zeros,
                                  (batch,), jnp.int32)
    first = index.value
    counts = jnp.cumsum(input_mask.astype(jnp.int32), axis=-1)
    positions = next_position.value[:, None] + jnp.maximum(counts - 1, 0)
    key_real.value = jax.lax.dynamic_update_slice(key_real.value, input_mask,
                                                  (0, first))
    # A one-token prompt prefills nothing (length 0): sum, not counts[-1].
    next_position.value = next_position.value + input_mask.astype(
        jnp.int32).sum(-1)
    index.value = first + length
    return positions, key_real.value, first


class DecoderOnly(nn.Module):
  """A decoder-only LM. Variables: 'params' (base), optional 'adapters'."""
  config: DecoderConfig
  adapter: Optional[AdapterConfig] = None
  execution: ExecutionConfig = ExecutionConfig()

  def setup(self):
    c = self.config
    self.token_embedder = nn.Embed(
        c.vocab_size, c.hidden_size, dtype=jnp.dtype(c.dtype),
        param_dtype=jnp.dtype(c.param_dtype),
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(1.0), (VOCAB, EMBED)))
    self.decoder = Decoder(c, self.adapter, self.token_embedder,
                           self.execution)

  def __call__(self, tokens: Array, input_mask: Optional[Array] = None,
               positions: Optional[Array] = None,
               segment_ids: Optional[Array] = None,
               prefix_mask: Optional[Array] = None,
               enable_dropout: bool = False, decode: bool = False,
               max_decode_length: Optional[int] = None,
               output: str = "logits") -> Array:
    """Logits (batch, length, vocab) in float32; see the module docstring.
    output='hidden': the final hidden states, before the head (`head`)."""
    return self.decoder(tokens, input_mask, positions, segment_ids,
                        prefix_mask, enable_dropout, decode,
                        max_decode_length, output)

  def head(self, hidden: Array, enable_dropout: bool = False) -> Array:
    """The output layer alone: float32 logits of final hidden states."""
    return self.decoder(None, None, None, None, None, enable_dropout, False,
                        None, "head", hidden)


def param_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
  """Every base parameter path of `config`'s network -> its shape."""
  c = config
  embed = (c.hidden_size,)
  shapes = {"token_embedder/embedding": (c.vocab_size, c.hidden_size),
            "decoder/decoder_norm/scale": embed}
  if not c.tie_word_embeddings:
    shapes["decoder/logits_dense/kernel"] = (c.hidden_size, c.vocab_size)
  for i in range(c.num_layers):
    p = f"decoder/layers_{i}"
    norms = ["pre_attention_norm", "pre_mlp_norm"]
    if c.gemma_norms:
      norms += ["post_attention_norm", "post_mlp_norm"]
    shapes.update({f"{p}/{n}/scale": embed for n in norms})
    a = f"{p}/attention"
    shapes[f"{a}/query/kernel"] = (c.hidden_size, c.query_dim)
    shapes[f"{a}/key/kernel"] = (c.hidden_size, c.kv_dim)
    shapes[f"{a}/value/kernel"] = (c.hidden_size, c.kv_dim)
    shapes[f"{a}/out/kernel"] = (c.query_dim, c.hidden_size)
    if c.qkv_bias:
      shapes[f"{a}/query/bias"] = (c.query_dim,)
      shapes[f"{a}/key/bias"] = (c.kv_dim,)
      shapes[f"{a}/value/bias"] = (c.kv_dim,)
    if c.qk_norm:
      shapes[f"{a}/query_norm/scale"] = (c.head_dim,)
      shapes[f"{a}/key_norm/scale"] = (c.head_dim,)
    shapes[f"{p}/mlp/wi_0/kernel"] = (c.hidden_size, c.intermediate_size)
    shapes[f"{p}/mlp/wi_1/kernel"] = (c.hidden_size, c.intermediate_size)
    shapes[f"{p}/mlp/wo/kernel"] = (c.intermediate_size, c.hidden_size)
  return shapes
