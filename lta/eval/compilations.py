"""Counting XLA compilations, from the events jax.monitoring reports.

A λ sweep must reuse one compiled program for every λ; this is how the
tests and bench/bench_sweep.py check it. jax records one backend-compile
event per compiled (or persistent-cache-loaded) program, named after the
jitted function, and one cache-hit event per program the persistent
compilation cache supplied.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator

from jax import monitoring

# jax._src.dispatch.BACKEND_COMPILE_EVENT (not exported by jax.monitoring).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
PERSISTENT_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass
class Compilations:
  """What compiled while counting: function names in order, and how many of
  them the persistent compilation cache supplied instead."""
  names: list[str] = dataclasses.field(default_factory=list)
  persistent_cache_hits: int = 0
  marks: list[tuple[str, int]] = dataclasses.field(default_factory=list)

  def mark(self, label: str) -> None:
    """Notes how many compilations happened before `label`."""
    self.marks.append((label, len(self.names)))

  def since(self, label: str) -> list[str]:
    """The functions compiled after mark(label)."""
    return self.names[dict(self.marks)[label]:]

  def of(self, substring: str) -> list[str]:
    return [n for n in self.names if substring in n]


@contextlib.contextmanager
def counting() -> Iterator[Compilations]:
  """Counts the XLA compilations of this process while the block runs."""
  seen = Compilations()

  def on_duration(event: str, _secs: float, **kwargs) -> None:
    if event == BACKEND_COMPILE_EVENT:
      seen.names.append(str(kwargs.get("fun_name", "?")))

  def on_event(event: str, **_kwargs) -> None:
    if event == PERSISTENT_CACHE_HIT_EVENT:
      seen.persistent_cache_hits += 1

  monitoring.register_event_duration_secs_listener(on_duration)
  monitoring.register_event_listener(on_event)
  try:
    yield seen
  finally:
    monitoring.unregister_event_duration_listener(on_duration)
    monitoring.unregister_event_listener(on_event)
