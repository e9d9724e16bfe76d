"""Host memory that XLA:CPU frees is kept for the next step, not unmapped.

XLA:CPU allocates each execution's temporaries (5 GB for a LoRA step on the
mT5-small shape) with malloc, from its worker threads. glibc serves requests
that large with mmap (a thread's arena cannot hold them) and unmaps them
when they are freed, so every step faults its temporaries in again, 4 KB at
a time: 1.2 million page faults, about half of a 1-core step (BENCHMARKS.md).
With one arena, no mmap and no trimming, a step reuses the last one's pages.

The cost: the process keeps its peak heap until it exits, and its threads
share one arena. `LTA_HOST_MALLOC=system` leaves malloc as it is. Applied
when `lta` is imported; only on Linux with glibc (elsewhere nothing is done).
`release_free_memory` gives the free pages back once, after a set-up whose
host copies are gone (a step's temporaries, one block, may not fit the
holes they left).
"""

import ctypes
import os
import platform
import sys

from lta import errors

ENV = "LTA_HOST_MALLOC"
CHOICES = ("keep", "system")
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def choice() -> str:
  value = os.environ.get(ENV, "keep")
  if value not in CHOICES:
    raise errors.ConfigError(
        f"{ENV}={value!r}; expected one of {', '.join(map(repr, CHOICES))}"
        f"{errors.did_you_mean(value, CHOICES)}")
  return value


def supported() -> bool:
  """Linux with glibc, whose mallopt this module calls."""
  return sys.platform.startswith("linux") and (
      platform.libc_ver()[0] == "glibc")


def keep_freed_memory() -> bool:
  """Sets glibc malloc to keep freed memory (module docstring); True when
  it did. Threads that allocated before this call keep their own arenas."""
  if choice() == "system" or not supported():
    return False
  mallopt = _glibc().mallopt
  # A trim threshold of -1 is SIZE_MAX to glibc: never give the heap back.
  return all(mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))


def release_free_memory() -> bool:
  """Returns the heap's free pages to the system (glibc malloc_trim), also
  when malloc keeps freed memory; True when any were released."""
  if not supported():
    return False
  return _glibc().malloc_trim(0) == 1


def _glibc() -> ctypes.CDLL:
  return ctypes.CDLL("libc.so.6")
