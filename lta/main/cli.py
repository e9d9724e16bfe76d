"""The `lta` console script: `lta <command> [gin flags]`."""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

# command -> module with main(argv) -> exit code. Imported on use: each
# pulls in JAX, TensorFlow and seqio.
COMMANDS = {
    "train": "lta.main.train",
    "pipeline": "lta.main.pipeline",
    "merge": "lta.main.merge",
    "eval": "lta.main.eval",
    "miniature": "lta.main.miniature",
    "sweep": "lta.main.sweep",
    "prepare-data": "lta.main.prepare_data",
    "report": "lta.main.report",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(f"usage: lta {{{','.join(sorted(COMMANDS))}}} --gin_file=... "
          "[--gin.NAME=VALUE ...] [--gin_search_paths=DIR,...]")
    return 0 if argv else 2
  command, rest = argv[0], argv[1:]
  if command not in COMMANDS:
    print(f"lta: unknown command {command!r}; expected one of "
          f"{sorted(COMMANDS)}", file=sys.stderr)
    return 2
  return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
  sys.exit(main())
