"""T5X-style gin flags shared by every lta entry point.

  --gin_file=PATH          repeatable; resolved against --gin_search_paths
  --gin.NAME=VALUE         one binding, VALUE in gin syntax (strings quoted)
  --gin_bindings=BINDING   repeatable, a whole 'NAME = VALUE' binding
  --gin_search_paths=A,B   extra directories for --gin_file and gin includes

Files are parsed in order, then bindings in order, so later ones win. A
macro left at %gin.REQUIRED is an error naming it; gin itself rejects
unknown configurables and parameters.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Optional, Sequence

import gin

# The repo's gin/ directory: runs/, models/, peft/, experiments/.
GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gin")

_REQUIRED_RE = re.compile(r"^([\w./]+)\s*=\s*%gin\.REQUIRED\s*$", re.M)


@dataclasses.dataclass
class GinFlags:
  files: list[str] = dataclasses.field(default_factory=list)
  bindings: list[str] = dataclasses.field(default_factory=list)
  search_paths: list[str] = dataclasses.field(default_factory=list)


def _value(arg: str, name: str, rest: list[str]) -> str:
  """The value of `--name=value` or `--name value`."""
  if arg.startswith(f"--{name}="):
    return arg.split("=", 1)[1]
  if not rest:
    raise ValueError(f"Flag --{name} needs a value")
  return rest.pop(0)


def parse_flags(argv: Sequence[str]) -> GinFlags:
  """Splits argv into gin files, bindings and search paths.

  Any other flag is an error naming it.
  """
  flags = GinFlags()
  rest = list(argv)
  while rest:
    arg = rest.pop(0)
    if arg.startswith("--gin."):
      name, sep, value = arg[len("--gin."):].partition("=")
      if not sep or not name:
        raise ValueError(f"Flag {arg!r}: expected --gin.NAME=VALUE")
      flags.bindings.append(f"{name} = {value}")
    elif arg.split("=", 1)[0] == "--gin_file":
      flags.files.append(_value(arg, "gin_file", rest))
    elif arg.split("=", 1)[0] == "--gin_bindings":
      flags.bindings.append(_value(arg, "gin_bindings", rest))
    elif arg.split("=", 1)[0] == "--gin_search_paths":
      flags.search_paths.extend(
          p for p in _value(arg, "gin_search_paths", rest).split(",") if p)
    else:
      raise ValueError(
          f"Unknown flag {arg!r}; lta entry points take --gin_file, "
          "--gin.NAME=VALUE, --gin_bindings and --gin_search_paths")
  return flags


def missing_required() -> list[str]:
  """Names (macros or configurable.parameter) still bound to %gin.REQUIRED."""
  return sorted(set(_REQUIRED_RE.findall(gin.config_str())))


def _resolve(path: str, search_paths: Sequence[str]) -> str:
  if os.path.isabs(path) or os.path.exists(path):
    return path
  for directory in search_paths:
    candidate = os.path.join(directory, path)
    if os.path.exists(candidate):
      return candidate
  raise FileNotFoundError(
      f"--gin_file={path} not found here or in the gin search path "
      f"{list(search_paths)}")


def _not_a_package_path(record: logging.LogRecord) -> bool:
  # gin looks for every include relative to the working directory first and
  # logs an error each time it is not there, before trying the search path.
  return record.msg != "Path not found: %s"


def configure(flags: GinFlags, skip_unknown: bool = False) -> None:
  """Parses the files and bindings into gin's global config.

  Raises if any %gin.REQUIRED binding is left unset.
  """
  search_paths = [*flags.search_paths, GIN_DIR]
  for path in search_paths:
    gin.add_config_file_search_path(path)
  files = [_resolve(f, search_paths) for f in flags.files]
  root = logging.getLogger()
  root.addFilter(_not_a_package_path)
  try:
    gin.parse_config_files_and_bindings(files, flags.bindings,
                                        skip_unknown=skip_unknown,
                                        finalize_config=False)
  finally:
    root.removeFilter(_not_a_package_path)
  missing = missing_required()
  if missing:
    hints = ", ".join(f"--gin.{name}=..." for name in missing)
    raise ValueError(
        f"Required gin bindings not set: {', '.join(missing)} (set them with "
        f"{hints}; strings need quotes, e.g. --gin.MODEL_DIR=\\\"/tmp/run\\\")")


def parse_and_configure(argv: Sequence[str],
                        required_files: Optional[int] = 1) -> GinFlags:
  flags = parse_flags(argv)
  if required_files and len(flags.files) < required_files:
    raise ValueError("Give at least one --gin_file, e.g. "
                     "--gin_file=runs/train_adapter.gin")
  configure(flags)
  return flags
