"""Stage records: a re-run skips what it already made with the same config.

A pipeline stage writes `stage.json` next to its outputs: its name, its
spec (every config value its outputs depend on, including the digests of
the stages it consumes) and whether it finished. A re-run then finds:

  no record, no outputs       -> "new": run the stage;
  the same spec, finished     -> "cached": skip it;
  the same spec, unfinished   -> "resume": run it (the trainer resumes from
                                 its checkpoints);
  another spec, or outputs without a record
                              -> ConfigError naming the values that differ
                                 (trained outputs are never overwritten),
                                 or "stale" for a stage that may be redone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Mapping, Optional, Sequence

from lta import errors

RECORD_FILE = "stage.json"
NEW, CACHED, RESUME, STALE = "new", "cached", "resume", "stale"
SKIPPED = "cached, skipped"  # what a run prints for a CACHED stage


def canonical(spec: Mapping[str, Any]) -> dict[str, Any]:
  """`spec` as it reads back from JSON (tuples become lists)."""
  return json.loads(json.dumps(spec, sort_keys=True))


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage: a name for messages, its record's path, what it makes."""
  name: str
  record_path: str
  spec: Mapping[str, Any]
  # Paths the stage writes; any of them without a record is an error.
  outputs: Sequence[str] = ()

  @classmethod
  def in_dir(cls, name: str, directory: str,
             spec: Mapping[str, Any]) -> "Stage":
    """A stage that owns `directory` and keeps its record there."""
    return cls(name, os.path.join(directory, RECORD_FILE), spec, (directory,))

  @property
  def digest(self) -> str:
    """Identifies the spec; a consumer puts it into its own spec."""
    text = json.dumps(canonical(self.spec), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """'key: old -> new' for every leaf of `new` that `old` lacks or differs in.

  A leaf only `old` has is a fact the new run does not ask about (a shared
  base's seed, say), not a difference.
  """
  a, b = _flatten(canonical(old)), _flatten(canonical(new))
  return [f"{k}: {json.dumps(a[k]) if k in a else 'unset'} -> "
          f"{json.dumps(b[k])}"
          for k in sorted(b) if k not in a or a[k] != b[k]]


def read_record(stage: Stage) -> Optional[dict[str, Any]]:
  if not os.path.exists(stage.record_path):
    return None
  with open(stage.record_path, encoding="utf-8") as f:
    return json.load(f)


def changes(stage: Stage) -> list[str]:
  """How `stage.spec` differs from its record's (all of it if none)."""
  record = read_record(stage)
  return differences(record["spec"] if record else {}, stage.spec)


def _has_files(path: str) -> bool:
  if os.path.isdir(path):
    return any(os.scandir(path))
  return os.path.exists(path)


def check(stage: Stage, redo_stale: bool = False) -> str:
  """NEW, CACHED or RESUME; STALE only if `redo_stale`.

  Raises:
    errors.ConfigError: the outputs were made with another spec (and not
      `redo_stale`), or exist without a record.
  """
  record = read_record(stage)
  where = os.path.dirname(stage.record_path)
  if record is None:
    found = [p for p in stage.outputs if _has_files(p)]
    if not found:
      return NEW
    raise errors.ConfigError(
        f"{found[0]} holds files but no {RECORD_FILE} (made by an older lta "
        f"or by hand), so the {stage.name} cannot be checked against this "
        f"config: delete it, or set another PipelineConfig.workdir.")
  changed = differences(record["spec"], stage.spec)
  if changed and redo_stale:
    return STALE
  if changed:
    raise errors.ConfigError(
        f"{stage.record_path}: the {stage.name} there was made with another "
        f"config ({'; '.join(changed)}); it is not overwritten: delete "
        f"{where}, or set another PipelineConfig.workdir.")
  return CACHED if record.get("finished") else RESUME


def _write(stage: Stage, finished: bool) -> None:
  os.makedirs(os.path.dirname(stage.record_path) or ".", exist_ok=True)
  tmp = stage.record_path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump({"stage": stage.name, "digest": stage.digest,
               "finished": finished, "spec": canonical(stage.spec)}, f,
              indent=2, sort_keys=True)
  os.replace(tmp, stage.record_path)


def start(stage: Stage) -> None:
  """Records the spec before the stage writes anything else."""
  _write(stage, finished=False)


def finish(stage: Stage) -> None:
  """Marks the stage done; a re-run with the same spec skips it."""
  _write(stage, finished=True)
