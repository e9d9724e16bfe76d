"""T5X-style gin flags shared by every lta entry point.

  --gin_file=PATH          repeatable; resolved against --gin_search_paths
  --gin.NAME=VALUE         one binding, VALUE in gin syntax (strings quoted)
  --gin_bindings=BINDING   repeatable, a whole 'NAME = VALUE' binding
  --gin_search_paths=A,B   extra directories for --gin_file and gin includes
  --tfds_data_dir=DIR      prepared TFDS data (train and eval)

Files are parsed in order, then bindings in order, so later ones win. The
modules a binding names are imported first (`--gin.lta.vocab.get_vocabulary.
path=...` imports lta.data.vocab). Every mistake is a one-line ConfigError naming
the flag or file:line: gin syntax (an unquoted string), an unknown
configurable or parameter, a macro that no loaded gin file uses
(`--gin.LAMDA`), a binding left at gin.REQUIRED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import logging
import os
import re
import tokenize
from typing import Callable, Iterator, Optional, Sequence

import gin

from lta import errors
from lta.cli import gin_registry

GIN_DIR = gin_registry.GIN_DIR
# gin module names (`module=` of a configurable) -> the Python module.
GIN_MODULES = {"lta.vocab": "lta.data.vocab"}

# Printed by `lta CMD --help` for every gin command.
FLAGS_HELP = """\
  --gin_file=FILE          a gin file, repeatable; relative paths are looked
                           up here, then in --gin_search_paths and gin/
  --gin.NAME=VALUE         one binding in gin syntax; strings keep their
                           quotes: --gin.MODEL_DIR=\\"/tmp/run\\"
  --gin_bindings=BINDING   a whole binding, e.g. 'TRAIN_STEPS = 100'
  --gin_search_paths=DIRS  comma-separated directories for gin files
  --debug                  show the traceback of an error"""
TFDS_FLAG_HELP = """\
  --tfds_data_dir=DIR      where prepared TFDS datasets are (as in T5X); by
                           default $TFDS_DATA_DIR, else ~/tensorflow_datasets"""

_FLAGS = ("--gin_file", "--gin_bindings", "--gin_search_paths",
          "--tfds_data_dir")
_REQUIRED_RE = re.compile(r"^([\w./]+)\s*=\s*%gin\.REQUIRED\s*$", re.M)
_BINDING_KEY_RE = re.compile(r"^\s*([\w./]+)\s*=")
_MACRO_REFERENCE_RE = re.compile(r"%([A-Za-z_]\w*)")
_MACRO_DEFINITION_RE = re.compile(r"^([A-Za-z_]\w*)\s*=", re.M)
_GIN_LOCATION_RE = re.compile(r'In file "(.+)", line (\d+)')


@dataclasses.dataclass
class GinFlags:
  files: list[str] = dataclasses.field(default_factory=list)
  bindings: list[str] = dataclasses.field(default_factory=list)
  search_paths: list[str] = dataclasses.field(default_factory=list)
  tfds_data_dir: Optional[str] = None
  # The flag each binding came from (parallel to `bindings`), for messages.
  binding_flags: list[str] = dataclasses.field(default_factory=list)

  def flag_of(self, index: int) -> str:
    if index < len(self.binding_flags):
      return self.binding_flags[index]
    return f"--gin_bindings={self.bindings[index]!r}"


def _value(arg: str, name: str, rest: list[str]) -> str:
  """The value of `--name=value` or `--name value`."""
  if arg.startswith(f"--{name}="):
    return arg.split("=", 1)[1]
  if not rest:
    raise errors.ConfigError(f"Flag --{name} needs a value")
  return rest.pop(0)


def parse_flags(argv: Sequence[str]) -> GinFlags:
  """Splits argv into gin files, bindings, search paths and the data dir.

  Any other flag is an error naming it.
  """
  flags = GinFlags()
  rest = list(argv)
  while rest:
    arg = rest.pop(0)
    name = arg.split("=", 1)[0]
    if arg.startswith("--gin."):
      key, sep, value = arg[len("--gin."):].partition("=")
      if not sep or not key:
        raise errors.ConfigError(
            f"Flag {arg!r}: expected --gin.NAME=VALUE")
      flags.bindings.append(f"{key} = {value}")
      flags.binding_flags.append(arg)
    elif name == "--gin_file":
      flags.files.append(_value(arg, "gin_file", rest))
    elif name == "--gin_bindings":
      flags.bindings.append(_value(arg, "gin_bindings", rest))
      flags.binding_flags.append(f"--gin_bindings={flags.bindings[-1]!r}")
    elif name == "--gin_search_paths":
      flags.search_paths.extend(
          p for p in _value(arg, "gin_search_paths", rest).split(",") if p)
    elif name == "--tfds_data_dir":
      flags.tfds_data_dir = _value(arg, "tfds_data_dir", rest)
    else:
      raise errors.ConfigError(
          f"Unknown flag {arg!r}{errors.did_you_mean(name, _FLAGS)}; lta "
          "commands take --gin_file, --gin.NAME=VALUE, --gin_bindings, "
          "--gin_search_paths, --tfds_data_dir (train and eval) "
          "and --debug")
  return flags


def missing_required() -> list[str]:
  """Names (macros or configurable.parameter) still bound to %gin.REQUIRED."""
  return sorted(set(_REQUIRED_RE.findall(gin.config_str())))


def _gin_files_under(directories: Sequence[str]) -> list[str]:
  found = []
  for directory in directories:
    for root, _, names in os.walk(directory):
      found += [os.path.relpath(os.path.join(root, n), directory)
                for n in names if n.endswith(".gin")]
  return found


def _resolve(path: str, search_paths: Sequence[str]) -> str:
  if os.path.exists(path):
    return path
  if not os.path.isabs(path):
    for directory in search_paths:
      candidate = os.path.join(directory, path)
      if os.path.exists(candidate):
        return candidate
  hint = errors.did_you_mean(path, _gin_files_under(search_paths))
  raise errors.MissingFileError(
      f"--gin_file={path} not found here or in the gin search path "
      f"{list(search_paths)}{hint}")


def binding_modules(binding: str) -> list[str]:
  """Modules a binding may name, longest first.

  'lta.vocab.get_vocabulary.path = ...' -> ['lta.data.vocab', 'lta']: the last
  two parts are the configurable and its parameter; a scope is dropped. A
  gin module name that is not the Python module's (GIN_MODULES) is mapped.
  """
  match = _BINDING_KEY_RE.match(binding)
  if not match:
    return []
  parts = match.group(1).rsplit("/", 1)[-1].split(".")
  names = [".".join(parts[:i]) for i in range(len(parts) - 2, 0, -1)]
  return [GIN_MODULES.get(name, name) for name in names]


def import_binding_modules(bindings: Sequence[str]) -> None:
  """Imports the module each binding names, so gin knows its configurables.

  A name that is no module is left to gin, which reports the configurable
  it cannot find.
  """
  for binding in bindings:
    for module in binding_modules(binding):
      try:
        importlib.import_module(module)
        break
      except ModuleNotFoundError as e:
        if not e.name or not (module == e.name or
                              module.startswith(e.name + ".")):
          raise  # the module exists but one of its imports is missing


def _not_a_package_path(record: logging.LogRecord) -> bool:
  # gin looks for every include relative to the working directory first and
  # logs an error each time it is not there, before trying the search path.
  return record.msg != "Path not found: %s"


def _configurable_names(dotted: bool) -> set[str]:
  """Registered configurables: full selectors, or their last part."""
  selectors = [s for s, _ in gin.config._REGISTRY.items()]  # pylint: disable=protected-access
  return set(selectors if dotted else (s.rsplit(".", 1)[-1]
                                       for s in selectors))


def _parameter_names(configurable: str) -> list[str]:
  match = gin.config._REGISTRY.get_match(configurable)  # pylint: disable=protected-access
  if match is None:
    return []
  return list(inspect.signature(match.wrapped).parameters)


def _hint(message: str) -> str:
  """A did-you-mean for gin's unknown-configurable and -parameter errors."""
  unknown = re.search(r"No configurable matching '([^']+)'", message)
  if unknown:
    name = unknown.group(1)
    return errors.did_you_mean(name, _configurable_names("." in name))
  param = re.search(r"Configurable '([^']+)' doesn't have a parameter named "
                    r"'([^']+)'", message)
  if param:
    return errors.did_you_mean(param.group(2),
                               _parameter_names(param.group(1)))
  return ""


def _unquoted_hint(flag: str) -> str:
  name, _, value = flag.partition("=")
  if flag.startswith("--gin.") and value and value[0] not in "\"'[({":
    return (f"; a string needs quotes that reach gin, e.g. "
            f"{name}=\\\"{value}\\\" in a shell")
  return ""


def _describe(e: BaseException, where: str) -> str:
  """gin's multi-line parse error as one line starting with its location."""
  if isinstance(e, SyntaxError):
    if e.filename:
      where = f"{e.filename}:{e.lineno}"
    text = f"{e.msg.rstrip('.')}" + (f" in {e.text.strip()!r}"
                                     if e.text and e.filename else "")
    hint = "" if e.filename else _unquoted_hint(where)
    return f"{where}: {text}{hint}"
  if isinstance(e, tokenize.TokenError):
    return f"{where}: unfinished value (an unclosed bracket or quote?)"
  lines = str(e).splitlines() or [type(e).__name__]
  location = _GIN_LOCATION_RE.search(str(e))
  if location:
    where = f"{location.group(1)}:{location.group(2)}"
  return f"{where}: {lines[0].rstrip('.')}{_hint(lines[0])}"


@contextlib.contextmanager
def _gin_errors(where: str) -> Iterator[None]:
  try:
    yield
  except errors.LtaError:
    raise
  except (SyntaxError, tokenize.TokenError, ValueError, OSError,
          ImportError) as e:
    raise errors.ConfigError(_describe(e, where)) from e


def check_macros_used(flags: GinFlags) -> None:
  """Every macro a flag binds must be used (%NAME) by the loaded config.

  gin accepts any macro, so `--gin.LAMDA=...` would otherwise be ignored.
  """
  text = gin.config_str()
  used = set(_MACRO_REFERENCE_RE.findall(text))
  defined = set(_MACRO_DEFINITION_RE.findall(text))
  for i, binding in enumerate(flags.bindings):
    match = _BINDING_KEY_RE.match(binding)
    name = match.group(1) if match else ""
    if not name or "." in name or "/" in name or name in used:
      continue
    flag = flags.flag_of(i)
    if flag.startswith("--gin."):
      flag = flag.split("=", 1)[0]
    raise errors.ConfigError(
        f"{flag}: no loaded gin file uses the macro %{name}"
        f"{errors.did_you_mean(name, (used | defined) - {name})}")


def _unbound_required(configurable: Callable[..., object]) -> list[str]:
  """Parameters of `configurable` defaulting to gin.REQUIRED and not bound."""
  name = configurable.__name__
  missing = []
  for param in inspect.signature(configurable).parameters.values():
    if param.default is gin.REQUIRED:
      try:
        gin.query_parameter(f"{name}.{param.name}")
      except ValueError:
        missing.append(f"{name}.{param.name}")
  return missing


def check_required(entries: Sequence[Callable[..., object]] = ()) -> None:
  """Raises naming every binding still required.

  Those are macros and parameters bound to %gin.REQUIRED in a file, and
  the gin.REQUIRED parameters of the `entries` (the configurables the
  command calls) that nothing binds.
  """
  missing = missing_required()
  for entry in entries:
    missing += _unbound_required(entry)
  if missing:
    hints = ", ".join(f"--gin.{name}=..." for name in missing)
    raise errors.ConfigError(
        f"Required gin bindings not set: {', '.join(missing)} (set them with "
        f"{hints}; strings need quotes, e.g. --gin.MODEL_DIR=\\\"/tmp/run\\\")")


def configure(flags: GinFlags, skip_unknown: bool = False,
              entries: Sequence[Callable[..., object]] = ()) -> None:
  """Parses the files and bindings into gin's global config.

  Raises a ConfigError naming the flag or file:line of the first mistake,
  and if any required binding is left unset (`check_required`).
  """
  search_paths = [*flags.search_paths, GIN_DIR]
  for path in search_paths:
    gin.add_config_file_search_path(path)
  files = [_resolve(f, search_paths) for f in flags.files]
  import_binding_modules(flags.bindings)
  root = logging.getLogger()
  root.addFilter(_not_a_package_path)
  try:
    for path in files:
      with _gin_errors(path):
        gin.parse_config_file(path, skip_unknown=skip_unknown)
    # One at a time, as gin would, so an error names its flag.
    for i, binding in enumerate(flags.bindings):
      with _gin_errors(flags.flag_of(i)):
        gin.parse_config(binding, skip_unknown=skip_unknown)
  finally:
    root.removeFilter(_not_a_package_path)
  check_macros_used(flags)
  check_required(entries)


def use_tfds_data_dir(path: str) -> None:
  """Reads every TFDS dataset from `path` (T5X's --tfds_data_dir)."""
  if "://" not in path and not os.path.isdir(path):
    raise errors.MissingFileError(
        f"--tfds_data_dir={path} is not a directory (prepare the data with "
        "lta prepare-data, or point the flag at where it is)")
  import seqio  # pylint: disable=g-import-not-at-top
  seqio.set_tfds_data_dir_override(path)


def with_default_files(argv: Sequence[str],
                       default_files: Sequence[str]) -> list[str]:
  """`argv`, led by --gin_file=F for each default file when it names none."""
  argv = list(argv)
  if any(a.startswith("--gin_file") for a in argv):
    return argv
  return [f"--gin_file={f}" for f in default_files] + argv


def parse_and_configure(argv: Sequence[str],
                        entries: Sequence[Callable[..., object]] = (),
                        reads_tfds: bool = False,
                        required_files: Optional[int] = 1) -> GinFlags:
  """Flags -> gin config, for the command that will call `entries`.

  A command that reads prepared TFDS data (`reads_tfds`) also takes
  --tfds_data_dir, and checks the vocabulary path it binds before anything
  loads.
  """
  flags = parse_flags(argv)
  if flags.tfds_data_dir and not reads_tfds:
    raise errors.ConfigError(
        "--tfds_data_dir: this command reads no prepared TFDS data (the flag "
        "is for lta train and lta eval)")
  if required_files and len(flags.files) < required_files:
    raise errors.ConfigError("Give at least one --gin_file, e.g. "
                             "--gin_file=runs/train_adapter.gin")
  configure(flags, entries=entries)
  if reads_tfds:
    if flags.tfds_data_dir:
      use_tfds_data_dir(flags.tfds_data_dir)
    from lta.data import vocab  # pylint: disable=g-import-not-at-top
    vocab.check_bound_path()
  return flags
