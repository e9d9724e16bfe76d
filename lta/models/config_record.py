"""What every model config dataclass does with its fields: copy with
changes, serialise, read back, and name the fields that decide shapes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

from lta import errors


class ConfigRecord:
  """A mixin for frozen config dataclasses (T5Config, DecoderConfig, ...)."""

  # Fields that change neither parameter shapes nor what the values mean.
  TRANSIENT_FIELDS: ClassVar[tuple[str, ...]] = ("dropout_rate", "dtype",
                                                 "name")

  def replace(self, **changes: Any):
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def architecture_dict(self) -> dict[str, Any]:
    """The fields that decide parameter shapes and values' meaning."""
    d = self.to_dict()
    for transient in self.TRANSIENT_FIELDS:
      d.pop(transient)
    return d

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
      raise errors.ConfigError(
          f"Unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**d)
