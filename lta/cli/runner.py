"""Runs one `lta` command: help, a quiet start, one-line errors, exit codes.

Every entry point goes through `run`: `lta CMD` (lta.cli.main) and
`python -m lta.cli.CMD` (`run_as_script`). A command module has
`main(argv) -> int` and may declare

  RUN_FILES        the gin run files it is configured with: it is a gin
                   command, and `--help` prints its docstring and each
                   file's header before JAX, TensorFlow or seqio is
                   imported. Without it, the command parses its own flags
                   (argparse) and prints its own --help.
  USES_TENSORFLOW  it reads data through seqio: TensorFlow is imported
                   first, without accelerators and without its CUDA probing
                   on the console.
  READS_TFDS       it reads prepared TFDS data and takes --tfds_data_dir.

A mistake the user can fix (lta.errors.LtaError) prints as one line,
`lta CMD: message`, with exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import textwrap
import types
from typing import Iterator, NoReturn, Sequence

from lta import errors

EXIT_USER_ERROR = 2

# TensorFlow's start-up lines, printed whatever TF_CPP_MIN_LOG_LEVEL says:
# on a machine without CUDA the CUDA runtime stub and driver probes, absl's
# note that logging is not set up yet, and on CPUs where TensorFlow turns on
# its oneDNN kernels a note saying so (lta runs no TensorFlow math that it
# affects: only input pipelines).
_TF_NOISE = re.compile(
    r"cudart_stub\.cc|Could not find cuda drivers|cuda_platform\.cc|cuInit|"
    r"All log messages before absl::InitializeLog\(\) is called|"
    r"port\.cc:\d+\] oneDNN custom operations are on")


def split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
  """(argv without --debug, whether it was there); `--` ends the search."""
  argv = list(argv)
  end = argv.index("--") if "--" in argv else len(argv)
  debug = "--debug" in argv[:end]
  return [a for i, a in enumerate(argv)
          if not (i < end and a == "--debug")], debug


_running_with_debug = [False]  # the innermost running command's --debug


def debug_flags() -> list[str]:
  """["--debug"] while a command given --debug runs, else []: what a
  command that re-runs itself in a child process (lta plan) passes on."""
  return ["--debug"] if _running_with_debug[-1] else []


def _wants_help(argv: Sequence[str]) -> bool:
  end = argv.index("--") if "--" in argv else len(argv)
  return any(a in ("-h", "--help") for a in argv[:end])


def gin_file_header(path: str) -> str:
  """The comment block a gin file begins with, without the '#'s."""
  lines = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if not line.startswith("#"):
        break
      lines.append(line[2:].rstrip() if line.startswith("# ") else
                   line[1:].rstrip())
  return "\n".join(lines)


def gin_command_help(command: str, module: types.ModuleType) -> str:
  """Usage, the module's docstring, its run files' headers and the flags."""
  from lta.cli import gin_flags as gin_cli  # pylint: disable=g-import-not-at-top  (no JAX)
  reads_tfds = getattr(module, "READS_TFDS", False)
  parts = [
      f"usage: lta {command} --gin_file=FILE ... [--gin.NAME=VALUE ...] "
      f"[--gin_bindings=BINDING ...]\n{' ' * (12 + len(command))}"
      "[--gin_search_paths=DIRS]" +
      (" [--tfds_data_dir=DIR]" if reads_tfds else "") + " [--debug]",
      textwrap.dedent(module.__doc__ or "").strip()]
  for name in module.RUN_FILES:
    path = os.path.join(gin_cli.GIN_DIR, name)
    parts.append(f"--- gin/{name} ---\n{gin_file_header(path)}")
  flags = gin_cli.FLAGS_HELP + ("\n" + gin_cli.TFDS_FLAG_HELP
                                if reads_tfds else "")
  parts.append(f"flags:\n{flags}")
  return "\n\n".join(parts)


@contextlib.contextmanager
def _filtered_stderr(noise: re.Pattern[str]) -> Iterator[None]:
  """Captures file descriptor 2 (C++ logs too), then re-emits all but noise."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      text = capture.read().decode("utf-8", errors="replace")
      kept = [line for line in text.splitlines(keepends=True)
              if not noise.search(line)]
      if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


def import_tensorflow_for_data(show_noise: bool = False) -> None:
  """Imports TensorFlow for seqio's input pipelines, on the CPU only.

  lta never runs TensorFlow on an accelerator, so its GPUs are hidden (it
  would otherwise reserve GPU memory JAX needs, as T5X notes), and on a
  machine without CUDA its probing lines are kept off the console; every
  other line it prints is kept. Call before anything imports TensorFlow.
  """
  if "tensorflow" in sys.modules:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
  with contextlib.ExitStack() as stack:
    if not show_noise:
      stack.enter_context(_filtered_stderr(_TF_NOISE))
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
      pass  # already initialised by an earlier user in this process


def _one_line(error: BaseException) -> str:
  # gin appends "In call to configurable 'f' (<function f at 0x...>)" lines
  # to errors raised inside configurables: noise for a user.
  lines = [line for line in str(error).splitlines()
           if not line.strip().startswith("In call to configurable")]
  return " ".join(" ".join(lines).split()) or type(error).__name__


def run(command: str, module: types.ModuleType, argv: Sequence[str]) -> int:
  """Runs `module.main(argv)` as `lta <command>`; returns the exit code."""
  argv, debug = split_debug(argv)
  wants_help = _wants_help(argv)
  if hasattr(module, "RUN_FILES") and wants_help:
    print(gin_command_help(command, module))
    return 0
  if getattr(module, "USES_TENSORFLOW", False) and not wants_help:
    import_tensorflow_for_data(show_noise=debug)
  _running_with_debug.append(debug)
  try:
    code = module.main(argv)
  except errors.LtaError as e:
    if debug:
      raise
    print(f"lta {command}: {_one_line(e)}", file=sys.stderr, flush=True)
    code = getattr(e, "exit_code", EXIT_USER_ERROR)
  except SystemExit as e:  # argparse: after --help, or a usage error
    if e.code is None or isinstance(e.code, int):
      return e.code or 0
    print(e.code, file=sys.stderr)
    return 1
  except BaseException:
    _leave_job(1, unexpected=True)
    raise
  finally:
    _running_with_debug.pop()
  _leave_job(code, unexpected=False)
  return code


def _leave_job(exit_code: int, unexpected: bool) -> None:
  """A failed process of a multi-process job exits without waiting for
  its peers (lta.partitioning.leave_job_after_failure). A preempted one is
  not failed: every process stopped at the step they agreed on, so they
  leave together through JAX's shutdown barrier, as after a finished run.
  Leaving at once, process 0 (the coordinator) would abort a peer still
  closing its checkpointer."""
  if exit_code == errors.EXIT_PREEMPTED:
    return
  if exit_code and "lta.partitioning" in sys.modules:
    from lta import partitioning  # pylint: disable=g-import-not-at-top
    partitioning.leave_job_after_failure(exit_code, unexpected)


def run_as_script(module: types.ModuleType) -> NoReturn:
  """`python -m lta.cli.<module>`: the same as `lta <command>`."""
  from lta.cli import main as cli  # pylint: disable=g-import-not-at-top
  sys.exit(run(cli.command_of(module), module, sys.argv[1:]))
