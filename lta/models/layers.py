"""Shared building blocks with logical axis names and optional adapters.

T5.1.1 / mT5 (lta/models/mt5) and the decoder-only families (lta/models/
decoder) are built from these: RMSNorm (T5's w * x and Gemma's (1 + w) * x),
the adapter-carrying Projection, T5's relative-position attention, rotary
embeddings, grouped-query attention with a key/value cache, and gated MLPs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lta.errors import ConfigError
from lta.adapters import deltas
from lta.adapters.config import AdapterConfig
from lta.models.dropout import DropoutMasks, dropout
from lta.models.lora import lora_output

Array = jax.Array
Initializer = Callable[..., Array]

# Logical axis names. lta.partitioning maps them onto the mesh.
BATCH, LENGTH, EMBED = "batch", "length", "embed"
JOINED_KV, MLP, VOCAB, HEADS = "joined_kv", "mlp", "vocab", "heads"
KV_LENGTH, RELPOS_BUCKETS = "kv_length", "relpos_buckets"
KV_HEADS, HEAD_DIM = "kv_heads", "head_dim"
# A Kronecker adapter's A factor (m, n): m splits the kernel's input
# dimension and n its output, so the two need names of their own.
ADAPTER_RANK = "adapter_rank"
KRON_OUTER_IN, KRON_OUTER_OUT = "kron_outer_in", "kron_outer_out"

NEG_INF = -1e10


def _dtype(name: str):
  return jnp.dtype(name)


def constrain(x: Array, axes: tuple[Optional[str], ...]) -> Array:
  return nn.with_logical_constraint(x, axes)


class RMSNorm(nn.Module):
  """T5 layer norm: scale only, no mean subtraction, statistics in float32.

  plus_one: Gemma's variant, which scales by (1 + scale) with scale
  initialised to 0. axis: the logical name of the normalised dimension.
  """
  epsilon: float = 1e-6
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  plus_one: bool = False
  axis: str = EMBED

  @nn.compact
  def __call__(self, x: Array) -> Array:
    init = nn.initializers.zeros if self.plus_one else nn.initializers.ones
    scale = self.param(
        "scale", nn.with_logical_partitioning(init, (self.axis,)),
        (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + self.epsilon)
    scale = scale.astype(jnp.float32)
    return (y * (1.0 + scale if self.plus_one else scale)).astype(self.dtype)


class Projection(nn.Module):
  """A dense layer `x @ kernel (+ bias)` that may carry an adapter.

  The adapter's variables live in the 'adapters' collection under the same
  path as this module. When that collection is absent at apply time, the
  layer is the plain base layer, which is how merged weights are decoded.
  use_bias adds a base 'bias' (Qwen2's q/k/v); adapters never touch it.
  """
  features: int
  kernel_axes: tuple[str, str]
  kernel_init: Initializer = nn.initializers.lecun_normal()
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  use_bias: bool = False
  dropout_masks: DropoutMasks = DropoutMasks()

  def kernel_path(self) -> str:
    return "/".join(self.scope.path) + "/kernel"

  def _adapted(self) -> bool:
    if (self.adapter is None or not self.adapter.foldable or
        not self.adapter.matches(self.kernel_path())):
      return False
    first_leaf = deltas.LEAVES[self.adapter.layout][0]
    return self.is_initializing() or self.has_variable("adapters", first_leaf)

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    in_features = x.shape[-1]
    kernel = self.param(
        "kernel", nn.with_logical_partitioning(self.kernel_init,
                                               self.kernel_axes),
        (in_features, self.features), self.param_dtype)
    x = x.astype(self.dtype)
    y = x @ kernel.astype(self.dtype)
    if self.use_bias:
      bias = self.param(
          "bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                               (self.kernel_axes[1],)),
          (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    if self._adapted():
      y = y + self._adapter_output(x, in_features, deterministic)
    return y

  def _adapter_variable(self, name, init, shape, axes):
    return self.variable(
        "adapters", name, nn.with_logical_partitioning(init, axes),
        self.make_rng("params") if self.is_initializing() else None, shape,
        _dtype(self.adapter.dtype)).value

  def _adapter_output(self, x: Array, in_features: int,
                      deterministic: bool) -> Array:
    cfg = self.adapter
    in_axis, out_axis = self.kernel_axes
    if cfg.dropout_rate > 0.0:
      x = dropout(cfg.dropout_rate, self.dropout_masks,
                  name="adapter_dropout")(x, deterministic=deterministic)
    if cfg.kind == "lora":
      check_lora_rank(cfg.rank, in_features, self.features, self.kernel_path())
      a = self._adapter_variable(
          deltas.LORA_A, nn.initializers.he_uniform(), (in_features, cfg.rank),
          (in_axis, ADAPTER_RANK))
      b = self._adapter_variable(deltas.LORA_B, nn.initializers.zeros,
                                 (cfg.rank, self.features),
                                 (ADAPTER_RANK, out_axis))
      return lora_output(x, a.astype(self.dtype), b.astype(self.dtype),
                         cfg.scale)
    m, n = check_kron_factors(
        cfg.kron_factors_for(in_features, self.features), in_features,
        self.features, self.kernel_path())
    a = self._adapter_variable(deltas.KRON_A, nn.initializers.he_uniform(),
                               (m, n),
                               (KRON_OUTER_IN, KRON_OUTER_OUT))
    bin_, bout = in_features // m, self.features // n
    if cfg.kron_b_rank:
      check_lora_rank(cfg.kron_b_rank, bin_, bout, self.kernel_path())
      down = self._adapter_variable(deltas.KRON_B_DOWN,
                                    nn.initializers.he_uniform(),
                                    (bin_, cfg.kron_b_rank),
                                    (in_axis, ADAPTER_RANK))
      up = self._adapter_variable(deltas.KRON_B_UP, nn.initializers.zeros,
                                  (cfg.kron_b_rank, bout),
                                  (ADAPTER_RANK, out_axis))
      b = down @ up
    else:
      b = self._adapter_variable(deltas.KRON_B, nn.initializers.zeros,
                                 (bin_, bout),
                                 (in_axis, out_axis))
    # x @ kron(A, B) without materialising kron(A, B): view x as (m, in/m).
    xs = x.reshape(x.shape[:-1] + (m, bin_))
    y = jnp.einsum("...ik,ij,kl->...jl", xs, a.astype(self.dtype),
                   b.astype(self.dtype))
    return y.reshape(x.shape[:-1] + (self.features,)) * cfg.scale


def check_lora_rank(rank: int, fan_in: int, fan_out: int, where: str) -> None:
  if rank > min(fan_in, fan_out):
    raise ConfigError(
        f"Adapter rank {rank} at {where} exceeds min(in, out) = "
        f"min({fan_in}, {fan_out}); choose rank <= {min(fan_in, fan_out)}.")


def check_kron_factors(factors: tuple[int, int], fan_in: int, fan_out: int,
                       where: str) -> tuple[int, int]:
  m, n = factors
  if m <= 0 or n <= 0 or fan_in % m or fan_out % n:
    raise ConfigError(
        f"Kronecker factors (m, n)={factors} do not fit {where} of shape "
        f"(in={fan_in}, out={fan_out}): m must divide {fan_in} and n must "
        f"divide {fan_out}.")
  return m, n


def relative_position_bucket(relative_position: Array, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> Array:
  """T5's log-spaced buckets; relative_position = key_pos - query_pos."""
  ret = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    ret = ret + (relative_position > 0).astype(jnp.int32) * num_buckets
    n = jnp.abs(relative_position)
  else:
    n = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  # float32 like the reference implementations, so bucket edges agree.
  safe_n = jnp.maximum(n, 1).astype(jnp.float32)
  large = max_exact + (
      jnp.log(safe_n / max_exact) / math.log(max_distance / max_exact) *
      (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return ret + jnp.where(is_small, n, large)


class RelativePositionBias(nn.Module):
  num_buckets: int
  max_distance: int
  num_heads: int
  bidirectional: bool
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, query_positions: Array, key_positions: Array) -> Array:
    """Returns bias (1, heads, q_len, k_len)."""
    rel = key_positions[None, :] - query_positions[:, None]
    buckets = relative_position_bucket(rel, self.bidirectional,
                                       self.num_buckets, self.max_distance)
    table = self.param(
        "rel_embedding",
        nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                     (HEADS, RELPOS_BUCKETS)),
        (self.num_heads, self.num_buckets), self.param_dtype)
    bias = jnp.take(table, buckets, axis=1)  # (heads, q, k)
    return bias[None].astype(self.dtype)


def projection_of(block: nn.Module, features: int, axes: tuple[str, str],
                  kernel_init: Any, name: str,
                  use_bias: bool = False) -> "Projection":
  """A Projection inside `block`, with the block's adapter and dtypes."""
  return Projection(features, axes, kernel_init=kernel_init,
                    adapter=block.adapter, dtype=block.dtype,
                    param_dtype=block.param_dtype, use_bias=use_bias,
                    dropout_masks=getattr(block, "dropout_masks",
                                          DropoutMasks()),
                    name=name)


class MultiHeadAttention(nn.Module):
  """T5 attention: no 1/sqrt(d) scaling (folded into the query init).

  In decode mode self-attention keeps a key/value cache of
  `max_decode_length` positions; cross-attention caches the projected
  encoder keys/values once, at the prefill call. Caches are head-major,
  (batch, heads, length, d_kv), the layout the score and context dots
  read, so a step copies nothing but its own key and value into them.

  use_bias and scale_scores give BART's attention (mBART, NLLB): biased
  q/k/v/o projections and scores scaled by d_kv**-0.5.
  """
  num_heads: int
  d_kv: int
  dropout_rate: float
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  use_bias: bool = False
  scale_scores: bool = False
  dropout_masks: DropoutMasks = DropoutMasks()

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Optional[Array], bias: Array,
               mask: Optional[Array], *, is_cross: bool = False,
               decode: bool = False, cache_position: Optional[Array] = None,
               max_decode_length: Optional[int] = None,
               deterministic: bool = True) -> Array:
    d_model = inputs_q.shape[-1]
    inner = self.num_heads * self.d_kv
    query_init = nn.initializers.normal((d_model * self.d_kv)**-0.5)
    kv_init = nn.initializers.normal(d_model**-0.5)
    out_init = nn.initializers.normal(inner**-0.5)
    bias_ = self.use_bias
    query = projection_of(self, inner, (EMBED, JOINED_KV), query_init,
                          "query", bias_)
    key = projection_of(self, inner, (EMBED, JOINED_KV), kv_init, "key",
                        bias_)
    value = projection_of(self, inner, (EMBED, JOINED_KV), kv_init, "value",
                          bias_)
    out = projection_of(self, d_model, (JOINED_KV, EMBED), out_init, "out",
                        bias_)

    q = query(inputs_q, deterministic)
    b, ql = q.shape[:2]
    q = q.reshape(b, ql, self.num_heads, self.d_kv)
    # k, v: (batch, length, heads, d_kv), or head-major from a cache.
    keys = "bhkd" if decode else "bkhd"
    if decode and is_cross:
      k, v = self._cached_cross_kv(key, value, inputs_kv, deterministic)
    else:
      k = self._split_heads(key(inputs_kv, deterministic))
      v = self._split_heads(value(inputs_kv, deterministic))
      if decode:
        k, v = self._update_self_cache(k, v, cache_position,
                                       max_decode_length)

    scores = jnp.einsum(f"bqhd,{keys}->bhqk", q, k).astype(jnp.float32)
    if self.scale_scores:
      scores = scores * self.d_kv**-0.5
    scores = scores + bias.astype(jnp.float32)
    if mask is not None:
      scores = jnp.where(mask, scores, NEG_INF)
    weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    weights = dropout(self.dropout_rate, self.dropout_masks)(
        weights, deterministic=deterministic)
    ctx = jnp.einsum(f"bhqk,{keys}->bqhd", weights, v).reshape(b, ql, inner)
    ctx = constrain(ctx, (BATCH, LENGTH, JOINED_KV))
    return out(ctx, deterministic)

  def _split_heads(self, x: Array) -> Array:
    return x.reshape(*x.shape[:2], self.num_heads, self.d_kv)

  def _cached_cross_kv(self, key, value, encoded, deterministic):
    """The encoder's keys and values, head-major, projected once."""
    if self.has_variable("cache", "cached_key"):
      ck = self.variable("cache", "cached_key", None)
      cv = self.variable("cache", "cached_value", None)
      return ck.value, cv.value
    head_major = lambda proj: self._split_heads(
        proj(encoded, deterministic)).transpose(0, 2, 1, 3)
    ck = self.variable("cache", "cached_key", lambda: head_major(key))
    cv = self.variable("cache", "cached_value", lambda: head_major(value))
    return ck.value, cv.value

  def _update_self_cache(self, k, v, position, max_decode_length):
    """Writes one step's k/v (batch, 1, heads, d_kv) at `position`; returns
    the whole head-major cache."""
    initialized = self.has_variable("cache", "cached_key")
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    b, h, _, d = k.shape
    ck = self.variable("cache", "cached_key", jnp.zeros,
                       (b, h, max_decode_length, d), k.dtype)
    cv = self.variable("cache", "cached_value", jnp.zeros,
                       (b, h, max_decode_length, d), v.dtype)
    if not initialized:
      # Prefill call: the cache is created; this call attends to itself.
      return k, v
    if k.shape[2] != 1:
      raise ValueError(f"Cached decoding takes one token a step, got "
                       f"{k.shape[2]}.")
    ck.value = jax.lax.dynamic_update_slice(ck.value, k, (0, 0, position, 0))
    cv.value = jax.lax.dynamic_update_slice(cv.value, v, (0, 0, position, 0))
    return ck.value, cv.value


class MlpBlock(nn.Module):
  """Gated or plain feed-forward block: act(wi_0 x) * wi_1 x, then wo.

  Gated GELU (tanh approximation) is T5.1.1's and Gemma's GeGLU; gated SiLU
  is Llama's and Qwen's SwiGLU (wi_0 = gate_proj, wi_1 = up_proj).
  """
  d_ff: int
  gated: bool
  activation: str
  dropout_rate: float
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  dropout_masks: DropoutMasks = DropoutMasks()

  def _proj(self, features, axes, fan_in, name):
    return projection_of(self, features, axes,
                         nn.initializers.normal(fan_in**-0.5), name)

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    d_model = x.shape[-1]
    act = {"gelu": lambda h: jax.nn.gelu(h, approximate=True),
           "relu": jax.nn.relu, "silu": jax.nn.silu}[self.activation]
    if self.gated:
      h = act(self._proj(self.d_ff, (EMBED, MLP), d_model, "wi_0")(
          x, deterministic))
      h = h * self._proj(self.d_ff, (EMBED, MLP), d_model, "wi_1")(
          x, deterministic)
    else:
      h = act(self._proj(self.d_ff, (EMBED, MLP), d_model, "wi")(
          x, deterministic))
    h = constrain(h, (BATCH, LENGTH, MLP))
    h = dropout(self.dropout_rate, self.dropout_masks)(
        h, deterministic=deterministic)
    return self._proj(d_model, (MLP, EMBED), self.d_ff, "wo")(h, deterministic)


def decoding_state(decoder: nn.Module, encoder_tokens: Optional[Array],
                   q_len: int, max_decode_length: Optional[int],
                   encoder_mask_fn: Optional[Callable[[Array], Array]] = None
                   ) -> tuple[Array, int, Array]:
  """(step position, key length, cross mask) of a decoder's cached call.

  The prefill call creates the position counter and the encoder mask in
  `decoder`'s cache; later calls advance the counter by `q_len`. The self-
  attention cache of `layers_0` gives the key length. encoder_mask_fn
  defaults to padding_key_mask (pad 0).
  """
  initialized = decoder.has_variable("cache", "position")
  pos = decoder.variable("cache", "position", jnp.zeros, (), jnp.int32)
  mask = decoder.variable("cache", "encoder_mask",
                          encoder_mask_fn or padding_key_mask, encoder_tokens)
  if not initialized:
    if max_decode_length is None:
      raise ValueError("The prefill call of cached decoding needs "
                       "max_decode_length.")
    return jnp.zeros((), jnp.int32), q_len, mask.value
  position = pos.value
  pos.value = position + q_len
  cache = decoder.scope.variables()["cache"]
  k_len = cache["layers_0"]["self_attention"]["cached_key"].shape[2]
  return position, k_len, mask.value


def causal_mask(q_len: int, k_len: int, offset: Array | int = 0) -> Array:
  """(1, 1, q_len, k_len) mask letting query i see keys <= i + offset."""
  q = jnp.arange(q_len)[:, None] + offset
  k = jnp.arange(k_len)[None, :]
  return (k <= q)[None, None]


def padding_key_mask(tokens: Array, pad_id: int = 0) -> Array:
  """(batch, 1, 1, k_len): attend only to non-pad keys.

  T5's pad is 0 and its ids are never negative; other families name theirs.
  """
  keep = tokens > 0 if pad_id == 0 else tokens != pad_id
  return keep[:, None, None, :]


# ------------------------------------------------- rotary, grouped attention --


def rope_inverse_frequencies(head_dim: int, theta: float,
                             rope_type: str = "default", factor: float = 1.0,
                             low_freq_factor: float = 1.0,
                             high_freq_factor: float = 4.0,
                             original_max_position: int = 8192) -> np.ndarray:
  """(head_dim // 2,) float32 rotary frequencies, computed as HF does.

  'linear' divides every frequency by factor; 'llama3' divides the low
  frequencies (wavelength > original / low_freq_factor), keeps the high ones
  (wavelength < original / high_freq_factor) and interpolates in between.
  """
  exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(
      np.float32) / np.float32(head_dim)
  inv = (1.0 / np.power(np.float32(theta), exponents)).astype(np.float32)
  if rope_type == "linear":
    return (inv / np.float32(factor)).astype(np.float32)
  if rope_type == "llama3":
    wavelength = 2 * math.pi / inv
    low_wavelength = original_max_position / low_freq_factor
    high_wavelength = original_max_position / high_freq_factor
    scaled = np.where(wavelength > low_wavelength, inv / factor, inv)
    smooth = ((original_max_position / wavelength - low_freq_factor) /
              (high_freq_factor - low_freq_factor))
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
    return np.where(medium, smoothed, scaled).astype(np.float32)
  if rope_type != "default":
    raise ConfigError(f"rope_type={rope_type!r}; expected 'default', "
                      "'linear' or 'llama3'")
  return inv


def rope_tables(positions: Array, inv_freq: np.ndarray) -> tuple[Array, Array]:
  """cos and sin (batch, length, head_dim) at int positions (batch, length)."""
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
  angles = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
  """Rotates x (batch, length, heads, head_dim) in HF's rotate-half layout."""
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  cos, sin = cos[:, :, None, :], sin[:, :, None, :]
  return (x * cos + rotated * sin).astype(x.dtype)


# Tied heads over at most this many rows (decoding steps) take tied_logits'
# vocabulary-major product.
FEW_ROWS = 16


def tied_logits(embed: nn.Embed, x: Array) -> Array:
  """embed.attend(x): x @ table.T, the tied output layer.

  For at most FEW_ROWS rows (a decoding step) on CPU it computes table @
  x.T and transposes after an optimization barrier: XLA:CPU's product of a
  few rows by a (vocab, hidden) table runs about 1.6x as fast with its
  output vocabulary-major (BENCHMARKS.md, decoder-only decoding). Same
  values up to float rounding.
  """
  rows = math.prod(x.shape[:-1])
  if rows > FEW_ROWS or jax.default_backend() != "cpu":
    return embed.attend(x)
  x, table = nn.dtypes.promote_dtype(x, embed.embedding, dtype=embed.dtype)
  flat = x.reshape(rows, x.shape[-1])
  logits = jax.lax.optimization_barrier(table @ flat.T).T
  return logits.reshape(*x.shape[:-1], table.shape[0])


def soft_cap(x: Array, cap: Optional[float]) -> Array:
  """Gemma 2's cap * tanh(x / cap); identity when cap is None."""
  return x if cap is None else jnp.tanh(x / cap) * cap


class GroupedQueryAttention(nn.Module):
  """Rotary self-attention; num_heads queries share num_kv_heads keys/values.

  Query head h reads key/value head h // (num_heads // num_kv_heads), as
  HF's repeat_kv. The caller builds the boolean mask (batch, 1, q, k) and
  the rotary tables. With a cache (decode=True) this call's keys/values are
  written at slot `cache_index` of a `max_decode_length` cache, and the
  queries attend over the whole cache (the mask hides unwritten slots).
  """
  num_heads: int
  num_kv_heads: int
  head_dim: int
  query_scale: float
  qkv_bias: bool = False
  qk_norm: bool = False
  norm_plus_one: bool = False
  norm_epsilon: float = 1e-6
  softcap: Optional[float] = None
  dropout_rate: float = 0.0
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  dropout_masks: DropoutMasks = DropoutMasks()

  def _norm(self, name):
    return RMSNorm(self.norm_epsilon, self.dtype, self.param_dtype,
                   self.norm_plus_one, HEAD_DIM, name=name)

  @nn.compact
  def __call__(self, x: Array, rope: tuple[Array, Array], mask: Array, *,
               decode: bool = False, cache_index: Optional[Array] = None,
               max_decode_length: Optional[int] = None,
               deterministic: bool = True) -> Array:
    b, length, d_model = x.shape
    hd, kvh = self.head_dim, self.num_kv_heads
    init = nn.initializers.normal(d_model**-0.5)
    q = projection_of(self, self.num_heads * hd, (EMBED, JOINED_KV), init,
                      "query", self.qkv_bias)(x, deterministic)
    k = projection_of(self, kvh * hd, (EMBED, JOINED_KV), init, "key",
                      self.qkv_bias)(x, deterministic)
    v = projection_of(self, kvh * hd, (EMBED, JOINED_KV), init, "value",
                      self.qkv_bias)(x, deterministic)
    q = q.reshape(b, length, self.num_heads, hd)
    k = k.reshape(b, length, kvh, hd)
    v = v.reshape(b, length, kvh, hd)
    if self.qk_norm:
      q, k = self._norm("query_norm")(q), self._norm("key_norm")(k)
    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    q = constrain(q, (BATCH, LENGTH, HEADS, HEAD_DIM))
    k = constrain(k, (BATCH, LENGTH, KV_HEADS, HEAD_DIM))
    v = constrain(v, (BATCH, LENGTH, KV_HEADS, HEAD_DIM))
    # k, v: (batch, length, kv_heads, head_dim), or head-major from a cache.
    keys = "bgkd" if decode else "bkgd"
    if decode:
      k, v = self._update_cache(k, v, cache_index, max_decode_length)
    groups = q.reshape(b, length, kvh, self.num_heads // kvh, hd)
    scores = jnp.einsum(f"bqgrd,{keys}->bgrqk", groups, k).astype(jnp.float32)
    scores = soft_cap(scores * self.query_scale, self.softcap)
    scores = jnp.where(mask[:, :, None], scores, NEG_INF)
    weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    weights = dropout(self.dropout_rate, self.dropout_masks)(
        weights, deterministic=deterministic)
    ctx = jnp.einsum(f"bgrqk,{keys}->bqgrd", weights, v)
    ctx = constrain(ctx.reshape(b, length, self.num_heads * hd),
                    (BATCH, LENGTH, JOINED_KV))
    out = projection_of(self, d_model, (JOINED_KV, EMBED),
                        nn.initializers.normal((self.num_heads * hd)**-0.5),
                        "out")
    return out(ctx, deterministic)

  def _update_cache(self, k, v, index, max_decode_length):
    """Writes k, v (batch, length, kv_heads, head_dim) at slot `index` of
    the head-major cache (batch, kv_heads, max_decode_length, head_dim), the
    layout the attention dots read; returns the whole cache."""
    if not self.has_variable("cache", "cached_key") and (
        max_decode_length is None):
      raise ValueError("The first cached call needs max_decode_length.")
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    shape = (k.shape[0], k.shape[1], max_decode_length, k.shape[3])
    ck = self.variable("cache", "cached_key", jnp.zeros, shape, k.dtype)
    cv = self.variable("cache", "cached_value", jnp.zeros, shape, v.dtype)
    ck.value = jax.lax.dynamic_update_slice(ck.value, k, (0, 0, index, 0))
    cv.value = jax.lax.dynamic_update_slice(cv.value, v, (0, 0, index, 0))
    return ck.value, cv.value
