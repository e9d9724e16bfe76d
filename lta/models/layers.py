"""T5.1.1 building blocks with logical axis names and optional adapters."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lta.errors import ConfigError
from lta.adapters import deltas
from lta.adapters.config import AdapterConfig

Array = jax.Array
Initializer = Callable[..., Array]

# Logical axis names. lta.partitioning maps them onto the mesh.
BATCH, LENGTH, EMBED = "batch", "length", "embed"
JOINED_KV, MLP, VOCAB, HEADS = "joined_kv", "mlp", "vocab", "heads"
KV_LENGTH, RELPOS_BUCKETS = "kv_length", "relpos_buckets"
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
  """T5 layer norm: scale only, no mean subtraction, statistics in float32."""
  epsilon: float = 1e-6
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = self.param(
        "scale", nn.with_logical_partitioning(nn.initializers.ones, (EMBED,)),
        (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + self.epsilon)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


def lora_delta(a: Array, b: Array, scale: float) -> Array:
  return scale * (a @ b)


def kron_delta(a: Array, b: Array, scale: float) -> Array:
  return scale * jnp.kron(a, b)


class Projection(nn.Module):
  """A bias-free dense layer `x @ kernel` that may carry an adapter.

  The adapter's variables live in the 'adapters' collection under the same
  path as this module. When that collection is absent at apply time, the
  layer is the plain base layer, which is how merged weights are decoded.
  """
  features: int
  kernel_axes: tuple[str, str]
  kernel_init: Initializer = nn.initializers.lecun_normal()
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def kernel_path(self) -> str:
    return "/".join(self.scope.path) + "/kernel"

  def _adapted(self) -> bool:
    if self.adapter is None or not self.adapter.matches(self.kernel_path()):
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
      x = nn.Dropout(cfg.dropout_rate, name="adapter_dropout")(
          x, deterministic=deterministic)
    if cfg.kind == "lora":
      check_lora_rank(cfg.rank, in_features, self.features, self.kernel_path())
      a = self._adapter_variable(
          deltas.LORA_A, nn.initializers.he_uniform(), (in_features, cfg.rank),
          (in_axis, ADAPTER_RANK))
      b = self._adapter_variable(deltas.LORA_B, nn.initializers.zeros,
                                 (cfg.rank, self.features),
                                 (ADAPTER_RANK, out_axis))
      return ((x @ a.astype(self.dtype)) @ b.astype(self.dtype)) * cfg.scale
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
                  kernel_init: Any, name: str) -> "Projection":
  """A Projection inside `block`, with the block's adapter and dtypes."""
  return Projection(features, axes, kernel_init=kernel_init,
                    adapter=block.adapter, dtype=block.dtype,
                    param_dtype=block.param_dtype, name=name)


class MultiHeadAttention(nn.Module):
  """T5 attention: no 1/sqrt(d) scaling (folded into the query init).

  In decode mode self-attention keeps a key/value cache of
  `max_decode_length` positions; cross-attention caches the projected
  encoder keys/values once, at the prefill call.
  """
  num_heads: int
  d_kv: int
  dropout_rate: float
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

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
    query = projection_of(self, inner, (EMBED, JOINED_KV), query_init,
                          "query")
    key = projection_of(self, inner, (EMBED, JOINED_KV), kv_init, "key")
    value = projection_of(self, inner, (EMBED, JOINED_KV), kv_init, "value")
    out = projection_of(self, d_model, (JOINED_KV, EMBED), out_init, "out")

    q = query(inputs_q, deterministic)
    if decode and is_cross:
      k, v = self._cached_cross_kv(key, value, inputs_kv, deterministic)
    else:
      k = key(inputs_kv, deterministic)
      v = value(inputs_kv, deterministic)
      if decode:
        k, v = self._update_self_cache(k, v, cache_position,
                                       max_decode_length)

    b, ql = q.shape[:2]
    q = q.reshape(b, ql, self.num_heads, self.d_kv)
    k = k.reshape(b, k.shape[1], self.num_heads, self.d_kv)
    v = v.reshape(b, v.shape[1], self.num_heads, self.d_kv)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
    scores = scores + bias.astype(jnp.float32)
    if mask is not None:
      scores = jnp.where(mask, scores, NEG_INF)
    weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    weights = nn.Dropout(self.dropout_rate)(weights,
                                            deterministic=deterministic)
    ctx = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, ql, inner)
    ctx = constrain(ctx, (BATCH, LENGTH, JOINED_KV))
    return out(ctx, deterministic)

  def _cached_cross_kv(self, key, value, encoded, deterministic):
    if self.has_variable("cache", "cached_key"):
      ck = self.variable("cache", "cached_key", None)
      cv = self.variable("cache", "cached_value", None)
      return ck.value, cv.value
    ck = self.variable("cache", "cached_key",
                       lambda: key(encoded, deterministic))
    cv = self.variable("cache", "cached_value",
                       lambda: value(encoded, deterministic))
    return ck.value, cv.value

  def _update_self_cache(self, k, v, position, max_decode_length):
    """Writes one step's k/v at `position`; returns the whole cache."""
    initialized = self.has_variable("cache", "cached_key")
    b, _, inner = k.shape
    ck = self.variable("cache", "cached_key", jnp.zeros,
                       (b, max_decode_length, inner), k.dtype)
    cv = self.variable("cache", "cached_value", jnp.zeros,
                       (b, max_decode_length, inner), v.dtype)
    if not initialized:
      # Prefill call: the cache is created; this call attends to itself.
      return k, v
    if k.shape[1] != 1:
      raise ValueError(f"Cached decoding takes one token a step, got "
                       f"{k.shape[1]}.")
    ck.value = jax.lax.dynamic_update_slice(ck.value, k, (0, position, 0))
    cv.value = jax.lax.dynamic_update_slice(cv.value, v, (0, position, 0))
    return ck.value, cv.value


class MlpBlock(nn.Module):
  """Gated-GELU (T5.1.1) or ReLU (T5) feed-forward block."""
  d_ff: int
  gated: bool
  activation: str
  dropout_rate: float
  adapter: Optional[AdapterConfig] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _proj(self, features, axes, fan_in, name):
    return projection_of(self, features, axes,
                         nn.initializers.normal(fan_in**-0.5), name)

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    d_model = x.shape[-1]
    act = {"gelu": lambda h: jax.nn.gelu(h, approximate=True),
           "relu": jax.nn.relu}[self.activation]
    if self.gated:
      h = act(self._proj(self.d_ff, (EMBED, MLP), d_model, "wi_0")(
          x, deterministic))
      h = h * self._proj(self.d_ff, (EMBED, MLP), d_model, "wi_1")(
          x, deterministic)
    else:
      h = act(self._proj(self.d_ff, (EMBED, MLP), d_model, "wi")(
          x, deterministic))
    h = constrain(h, (BATCH, LENGTH, MLP))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return self._proj(d_model, (MLP, EMBED), self.d_ff, "wo")(h, deterministic)


def causal_mask(q_len: int, k_len: int, offset: Array | int = 0) -> Array:
  """(1, 1, q_len, k_len) mask letting query i see keys <= i + offset."""
  q = jnp.arange(q_len)[:, None] + offset
  k = jnp.arange(k_len)[None, :]
  return (k <= q)[None, None]


def padding_key_mask(tokens: Array) -> Array:
  """(batch, 1, 1, k_len): attend only to non-pad keys (token id 0 is pad)."""
  return (tokens > 0)[:, None, None, :]

