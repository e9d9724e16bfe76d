"""Errors a user can fix, and the "did you mean" hint they share.

Library code raises these for bad input (a flag, a gin value, a file, a
record, an adapter); the message names the file, field or value. The `lta`
commands print them as one line without a traceback (`--debug` shows it).
Each also subclasses the builtin it refines, so callers that catch
ValueError or FileNotFoundError keep working.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class LtaError(Exception):
  """A mistake in the user's input; the message says what and where."""


class ConfigError(LtaError, ValueError):
  """A flag, gin binding or value that is unknown, missing or out of range."""


class DataError(LtaError, ValueError):
  """A dataset, split, record or vocabulary that cannot be used."""


class CheckpointError(LtaError, ValueError):
  """A base-model or adapter file that is malformed or does not fit."""


class MissingFileError(LtaError, FileNotFoundError):
  """A path the user gave does not exist."""


# sysexits.h EX_TEMPFAIL: "a temporary failure ... the user is invited to
# retry". Schedulers can requeue on it (Slurm's --requeue scripts,
# Kubernetes podFailurePolicy onExitCodes, systemd RestartForceExitStatus),
# and it differs from 0 (finished), 1 (crashed) and 128+N (killed by N).
EXIT_PREEMPTED = 75


class Preempted(LtaError):
  """A run stopped on a signal after saving a checkpoint; rerunning resumes."""
  exit_code = EXIT_PREEMPTED


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
  """' (did you mean 'a', 'b'?)' for the closest candidates, or ''."""
  close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
  if not close:
    return ""
  return " (did you mean " + ", ".join(repr(c) for c in close) + "?)"
