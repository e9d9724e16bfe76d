"""`lta --help` and `lta CMD --help`: data-driven, fast, before JAX.

Every command's help comes from what it declares: its line in
cli.COMMANDS, its module docstring and, for a gin command, the header of
each of its RUN_FILES.
"""

import importlib
import os
import re
import resource
import subprocess
import sys

import pytest

from lta.cli import gin_flags as gin_cli
from lta.cli import main as cli
from lta.cli import runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GIN_COMMANDS = [c for c, m in cli.COMMANDS.items()
                if hasattr(importlib.import_module(m), "RUN_FILES")]
HEAVY = ("jax", "tensorflow", "seqio", "flax")


def _lta(*args, importtime=False):
  """The process, and the CPU seconds it used.

  CPU time, not wall time, is what the 2 s bound is checked on: on an idle
  machine the two agree (one thread, no waiting), and CPU time does not
  grow when other jobs share the cores.
  """
  flags = ["-X", "importtime"] if importtime else []
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  proc = subprocess.run([sys.executable, *flags, "-m", "lta.cli.main", *args],
                        cwd=REPO, capture_output=True, text=True, timeout=60)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  return proc, (after.ru_utime - before.ru_utime +
                after.ru_stime - before.ru_stime)


def test_gin_commands_are_found():
  assert {"train", "eval", "merge", "pipeline", "miniature"} <= set(
      GIN_COMMANDS)


def test_lta_help_says_one_line_per_command():
  proc, _ = _lta("--help")
  assert proc.returncode == 0, proc.stderr
  for command, module in cli.COMMANDS.items():
    line = cli.summary(module)
    assert line and not line.startswith("`"), (command, line)
    assert re.search(rf"^  {re.escape(command)} +{re.escape(line)}$",
                     proc.stdout, re.M), (command, proc.stdout)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_command_help_is_fast_and_imports_no_jax(command):
  proc, seconds = _lta(command, "--help", importtime=True)
  assert proc.returncode == 0, proc.stderr
  imported = {line.split("|")[-1].strip()
              for line in proc.stderr.splitlines()
              if line.startswith("import time:")}
  assert not [m for m in imported if m.split(".")[0] in HEAVY]
  assert seconds < 2.0, f"lta {command} --help took {seconds:.2f} s of CPU"
  assert proc.stdout.startswith(f"usage: lta {command} ")
  module = importlib.import_module(cli.COMMANDS[command])
  assert module.__doc__.strip().splitlines()[0] in proc.stdout
  if command not in GIN_COMMANDS:
    return  # argparse prints the rest
  assert proc.stdout.startswith(f"usage: lta {command} --gin_file=")
  for name in module.RUN_FILES:
    header = runner.gin_file_header(os.path.join(gin_cli.GIN_DIR, name))
    assert "Required bindings" in header and header in proc.stdout, name
  assert ("--tfds_data_dir" in proc.stdout) == bool(
      getattr(module, "READS_TFDS", False))


def test_python_dash_m_help_is_the_same():
  proc = subprocess.run([sys.executable, "-m", "lta.cli.train", "--help"],
                        cwd=REPO, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == _lta("train", "--help")[0].stdout


def test_argparse_commands_keep_their_own_help(capsys):
  assert cli.main(["sweep", "--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("usage: lta sweep [flags] -- COMMAND [ARG ...]")
  assert "--eval_baseline" in out


def test_no_command_is_a_usage_error(capsys):
  assert cli.main([]) == 2
  assert "commands:" in capsys.readouterr().out
