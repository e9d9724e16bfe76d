"""The `lta` console script: `lta COMMAND [flags]`; `lta --help` lists them.

A command is one line in COMMANDS, naming a module with `main(argv) -> int`
whose docstring's first line describes it in `lta --help`. A gin command's
module also sets RUN_FILES, whose headers `lta COMMAND --help` prints; a
command without it parses its own flags and prints its own help (argparse).
lta.cli.runner does the rest for every command: --debug, one-line errors,
exit codes. Each is also `python -m lta.cli.<module>`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from typing import Optional, Sequence

from lta import errors
from lta import host_memory
from lta.cli import runner

# command -> module. Imported on use: most pull in JAX, TensorFlow and seqio.
COMMANDS = {
    "pipeline": "lta.cli.pipeline",
    "train": "lta.cli.train",
    "merge": "lta.cli.merge",
    "eval": "lta.cli.eval",
    "miniature": "lta.cli.miniature",
    "lr-miniature": "lta.cli.lr_miniature",
    "sweep": "lta.cli.sweep",
    "prepare-data": "lta.cli.prepare_data",
    "report": "lta.cli.report",
    "plan": "lta.cli.plan",
}


def summary(module_name: str) -> str:
  """The first line of a module's docstring, read without importing it."""
  spec = importlib.util.find_spec(module_name)
  if spec is None or not spec.origin:
    return "(module not found)"
  with open(spec.origin, encoding="utf-8") as f:
    doc = ast.get_docstring(ast.parse(f.read())) or ""
  return doc.strip().split("\n", 1)[0]


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = ["usage: lta COMMAND [flags]    (lta COMMAND --help: its flags, "
           "run files and an example)", "", "commands:"]
  lines += [f"  {name:<{width}}  {summary(module)}"
            for name, module in COMMANDS.items()]
  lines += ["", "Any command takes --debug to show the traceback of an error."]
  return "\n".join(lines)


def command_of(module: types.ModuleType) -> str:
  """The command name of an lta.cli module (also when run as __main__)."""
  name = module.__spec__.name if module.__spec__ else module.__name__
  for command, module_name in COMMANDS.items():
    if module_name == name:
      return command
  return name.rsplit(".", 1)[-1].replace("_", "-")


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  argv, debug = runner.split_debug(argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(usage())
    return 0 if argv else runner.EXIT_USER_ERROR
  command, rest = argv[0], argv[1:]
  try:
    host_memory.choice()
  except errors.ConfigError as e:
    print(f"lta: {e}", file=sys.stderr)
    return runner.EXIT_USER_ERROR
  if command not in COMMANDS:
    print(f"lta: unknown command {command!r}"
          f"{errors.did_you_mean(command, COMMANDS)}; lta --help lists "
          "them", file=sys.stderr)
    return runner.EXIT_USER_ERROR
  module = importlib.import_module(COMMANDS[command])
  return runner.run(command, module, (["--debug"] if debug else []) + rest)


if __name__ == "__main__":
  sys.exit(main())
