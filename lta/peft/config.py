"""Adapter settings: which projections get an adapter, and of what kind."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Optional

import gin

# Attention q, k, v, o in every self- and cross-attention (the paper's choice).
ATTENTION_TARGETS = (
    r"(encoder|decoder)/layers_\d+/"
    r"(attention|self_attention|encoder_decoder_attention)/"
    r"(query|key|value|out)/kernel")
MLP_TARGETS = r"(encoder|decoder)/layers_\d+/mlp/(wi_0|wi_1|wi|wo)/kernel"

KINDS = ("lora", "krona")


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
  scale = alpha / rank, or alpha / sqrt(rank) with `rslora`.
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

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"AdapterConfig.kind={self.kind!r}; expected one of "
                       f"{KINDS}")
    if self.rank <= 0:
      raise ValueError(f"AdapterConfig.rank must be positive, got {self.rank}")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(
          f"AdapterConfig.dropout_rate must be in [0, 1), got "
          f"{self.dropout_rate}")
    try:
      re.compile(self.targets)
    except re.error as e:
      raise ValueError(
          f"AdapterConfig.targets is not a valid regex: {self.targets!r} ({e})"
      ) from e
    object.__setattr__(self, "kron_factors", tuple(self.kron_factors))

  @property
  def scale(self) -> float:
    return self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)

  def matches(self, kernel_path: str) -> bool:
    return re.fullmatch(self.targets, kernel_path) is not None

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["kron_factors"] = list(self.kron_factors)
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "AdapterConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
      raise ValueError(f"Unknown AdapterConfig fields: {sorted(unknown)}")
    d = dict(d)
    if "kron_factors" in d:
      d["kron_factors"] = tuple(d["kron_factors"])
    return cls(**d)
