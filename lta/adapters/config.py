"""Adapter settings: which projections get an adapter, and of what kind."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Optional

import gin
import numpy as np

from lta.errors import ConfigError, did_you_mean
from lta.adapters.deltas import LEAVES

# Attention q, k, v, o in every self- and cross-attention (the paper's choice).
ATTENTION_TARGETS = (
    r"(encoder|decoder)/layers_\d+/"
    r"(attention|self_attention|encoder_decoder_attention)/"
    r"(query|key|value|out)/kernel")
MLP_TARGETS = r"(encoder|decoder)/layers_\d+/mlp/(wi_0|wi_1|wi|wo)/kernel"

KINDS = ("lora", "krona", "prompt", "bottleneck")
# Where bottleneck adapters sit: Houlsby after each layer's self-attention
# and after its MLP, Pfeiffer after the MLP only.
BOTTLENECK_PLACEMENTS = ("houlsby", "pfeiffer")
BOTTLENECK_ACTIVATIONS = ("relu", "gelu", "silu")
# Dtypes adapter (and base-model) weights may have.
FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")
# How a Kronecker adapter picks each module's A factor (m, n): one fixed
# shape for every module, or PEFT LoKr's factorization of each dimension.
KRON_FACTOR_RULES = ("fixed", "peft")
# Fields added after the first manifests, left out of a fixed-factor
# config's dict so that lta versions that lack them can still read it.
_LATER_FIELDS = ("kron_factor_rule", "kron_decompose_factor")
# Fields of the prompt and bottleneck kinds, in a config's dict only when
# it is of that kind (so LoRA and Kronecker manifests keep their hashes).
KIND_FIELDS = {
    "prompt": ("num_virtual_tokens",),
    "bottleneck": ("bottleneck_width", "bottleneck_placement",
                   "bottleneck_activation"),
}


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
  """(m, k) with m * k = dimension, as PEFT's LoKr `factorization` picks.

  A `factor` that divides `dimension` is taken as m; otherwise m is the
  largest divisor that is at most sqrt(dimension) and at most `factor`
  (-1: no limit), e.g. 256 -> (16, 16), 384 -> (16, 24), (128, 4) -> (4, 32).
  """
  if factor > 0 and dimension % factor == 0:
    return factor, dimension // factor
  limit = dimension if factor == -1 else factor
  m = max([1] + [d for d in range(2, math.isqrt(dimension) + 1)
                 if dimension % d == 0 and d <= limit])
  return m, dimension // m


def message_of(error: BaseException) -> str:
  """An error's message without the lines gin appends to errors raised in
  a configurable ("In call to configurable ..."), for one-line errors."""
  return str(error).split("\n", 1)[0]


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, (int, float, np.number)) and
          not isinstance(value, bool) and math.isfinite(value))


@gin.configurable
@dataclasses.dataclass(frozen=True)
class AdapterConfig:
  """One adapter type applied to every kernel whose path matches `targets`.

  Paths are '/'-joined parameter paths without the collection, e.g.
  'encoder/layers_0/attention/query/kernel'; `targets` must match the whole
  path (re.fullmatch).

  LoRA: dW = scale * A @ B, A (in, rank), B (rank, out), B starts at zero.
  KronA: dW = scale * kron(A, B), A (m, n), B (in/m, out/n), or B = B_down @
    B_up of rank `kron_b_rank` (LoKr). B (or B_up) starts at zero.
    kron_factor_rule 'fixed': (m, n) = `kron_factors` for every module.
    kron_factor_rule 'peft': each module's own (m, n), as PEFT's LoKr picks
    them: m = factorization(in, kron_decompose_factor)[0], n likewise from
    out. Non-square attention (mT5) then gets per-module factors.
  scale = alpha / rank, or alpha / sqrt(rank) with `rslora`.

  prompt: `num_virtual_tokens` soft prompt vectors prepended to the input
    embeddings of the encoder (mT5, mBART, NLLB) or of a decoder-only
    model (lta.models.adapter_layers); `targets` and the LoRA / Kronecker
    fields do not apply.
  bottleneck: x + up(act(down(x))) of width `bottleneck_width` on a
    sublayer's output, before its residual: `bottleneck_placement`
    'houlsby' after each layer's self-attention and MLP, 'pfeiffer' after
    the MLP only. up starts at zero, so the adapter starts as the identity.
  """
  kind: str = "lora"
  rank: int = 4
  alpha: float = 4.0
  rslora: bool = False
  dropout_rate: float = 0.0
  targets: str = ATTENTION_TARGETS
  kron_factors: tuple[int, int] = (32, 16)
  kron_b_rank: Optional[int] = None
  dtype: str = "float32"
  kron_factor_rule: str = "fixed"
  kron_decompose_factor: int = -1
  num_virtual_tokens: int = 20
  bottleneck_width: int = 64
  bottleneck_placement: str = "houlsby"
  bottleneck_activation: str = "relu"

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ConfigError(f"AdapterConfig.kind={self.kind!r}; expected one of "
                        f"{KINDS}")
    if not _is_int(self.rank) or self.rank <= 0:
      raise ConfigError(f"AdapterConfig.rank must be a positive int, got "
                        f"{self.rank!r}")
    if not _is_number(self.alpha):
      raise ConfigError(f"AdapterConfig.alpha must be a finite number, got "
                        f"{self.alpha!r}")
    if not isinstance(self.rslora, bool):
      raise ConfigError(f"AdapterConfig.rslora must be true or false, got "
                        f"{self.rslora!r}")
    if not (_is_number(self.dropout_rate) and 0.0 <= self.dropout_rate < 1.0):
      raise ConfigError(
          f"AdapterConfig.dropout_rate must be in [0, 1), got "
          f"{self.dropout_rate!r}")
    self._check_targets()
    self._check_kronecker()
    self._check_prompt_and_bottleneck()
    if self.dtype not in FLOAT_DTYPES:
      raise ConfigError(f"AdapterConfig.dtype={self.dtype!r}; expected one "
                        f"of {FLOAT_DTYPES}")

  def _check_targets(self):
    if not isinstance(self.targets, str):
      raise ConfigError(f"AdapterConfig.targets must be a regex string, got "
                        f"{self.targets!r}")
    try:
      re.compile(self.targets)
    except re.error as e:
      raise ConfigError(
          f"AdapterConfig.targets is not a valid regex: {self.targets!r} ({e})"
      ) from e

  def _check_kronecker(self):
    factors = self.kron_factors
    if not (isinstance(factors, (tuple, list)) and len(factors) == 2 and
            all(_is_int(f) and f > 0 for f in factors)):
      raise ConfigError(f"AdapterConfig.kron_factors must be two positive "
                        f"ints (m, n), got {factors!r}")
    object.__setattr__(self, "kron_factors", tuple(int(f) for f in factors))
    if self.kron_b_rank is not None and not (_is_int(self.kron_b_rank) and
                                             self.kron_b_rank > 0):
      raise ConfigError(f"AdapterConfig.kron_b_rank must be None or a "
                        f"positive int, got {self.kron_b_rank!r}")
    if self.kron_factor_rule not in KRON_FACTOR_RULES:
      raise ConfigError(
          f"AdapterConfig.kron_factor_rule={self.kron_factor_rule!r}; "
          f"expected one of {KRON_FACTOR_RULES}")
    factor = self.kron_decompose_factor
    if not _is_int(factor) or not (factor == -1 or factor > 0):
      raise ConfigError(f"AdapterConfig.kron_decompose_factor must be -1 or "
                        f"a positive int, got {factor!r}")
    if self.kron_factor_rule == "fixed" and factor != -1:
      raise ConfigError(
          f"AdapterConfig.kron_decompose_factor={factor} only applies with "
          "kron_factor_rule='peft'")

  def _check_prompt_and_bottleneck(self):
    for field in ("num_virtual_tokens", "bottleneck_width"):
      value = getattr(self, field)
      if not _is_int(value) or value <= 0:
        raise ConfigError(f"AdapterConfig.{field} must be a positive int, "
                          f"got {value!r}")
    for field, allowed in (("bottleneck_placement", BOTTLENECK_PLACEMENTS),
                           ("bottleneck_activation", BOTTLENECK_ACTIVATIONS)):
      value = getattr(self, field)
      if value not in allowed:
        raise ConfigError(
            f"AdapterConfig.{field}={value!r}; expected one of {allowed}"
            f"{did_you_mean(str(value), allowed)}")

  @property
  def foldable(self) -> bool:
    """Whether a trained adapter of this kind is a dW on base kernels."""
    return self.kind in ("lora", "krona")

  @property
  def scale(self) -> float:
    return self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)

  @property
  def layout(self) -> str:
    """Which of lta.adapters.deltas.LEAVES this config's adapters have."""
    if self.kind in ("lora", "prompt", "bottleneck"):
      return self.kind
    return "krona" if self.kron_b_rank is None else "lokr"

  def matches(self, kernel_path: str) -> bool:
    return re.fullmatch(self.targets, kernel_path) is not None

  def kron_factors_for(self, fan_in: int, fan_out: int) -> tuple[int, int]:
    """The A factor's shape (m, n) for a kernel of shape (fan_in, fan_out)."""
    if self.kron_factor_rule == "fixed":
      return self.kron_factors
    f = self.kron_decompose_factor
    return factorization(fan_in, f)[0], factorization(fan_out, f)[0]

  def leaf_shapes(self, fan_in: int, fan_out: int) -> dict[str, tuple]:
    """{leaf name: shape} of the adapter of a (fan_in, fan_out) kernel.

    Kronecker shapes assume (m, n) divide (fan_in, fan_out); the network
    checks that where it builds the adapter (`check_kron_factors`).
    """
    if self.kind == "lora":
      shapes = [(fan_in, self.rank), (self.rank, fan_out)]
    else:
      m, n = self.kron_factors_for(fan_in, fan_out)
      b_in, b_out, r = fan_in // m, fan_out // n, self.kron_b_rank
      shapes = [(m, n)] + ([(b_in, b_out)] if r is None else
                           [(b_in, r), (r, b_out)])
    return dict(zip(LEAVES[self.layout], shapes))

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["kron_factors"] = list(self.kron_factors)
    if self.kron_factor_rule == "fixed":
      for name in _LATER_FIELDS:
        del d[name]
    for kind, names in KIND_FIELDS.items():
      if kind != self.kind:
        for name in names:
          del d[name]
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "AdapterConfig":
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
      raise ConfigError(f"Unknown AdapterConfig field {unknown[0]!r}"
                        f"{did_you_mean(unknown[0], known)}")
    d = dict(d)
    if isinstance(d.get("kron_factors"), list):
      d["kron_factors"] = tuple(d["kron_factors"])
    return cls(**d)

  @classmethod
  def required_fields(cls) -> list[str]:
    """Fields every stored config has (the later ones may be absent)."""
    optional = set(_LATER_FIELDS).union(*KIND_FIELDS.values())
    return [f.name for f in dataclasses.fields(cls) if f.name not in optional]


def check_targets_matched(adapter: Optional[AdapterConfig],
                          variables: Any, example_kernel_path: str) -> None:
  """Refuses a network initialised with `adapter` but no adapter leaf:
  its targets regex matched none of the kernels (`example_kernel_path`
  shows what the network's kernel paths look like)."""
  if adapter is not None and not variables.get("adapters"):
    raise ConfigError(
        f"AdapterConfig.targets={adapter.targets!r} matches no kernel; "
        f"kernel paths look like {example_kernel_path!r}.")
