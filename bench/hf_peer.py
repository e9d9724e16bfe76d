"""The HF peer's interpreter: torch, transformers and peft, never in lta's venv.

`make hf-env` builds it in the repository's `.venv-hf/` from
`requirements/hf-peer.txt`. Benches take it as `--hf_python` (default: that
venv's python, found from this file, not from the working directory);
scripts that need torch themselves (the HF side of a bench, the fixture
writers) call `run_under_peer()` first, which re-runs them under it.
Standard library only: it runs under either interpreter.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO, ".venv-hf")
DEFAULT_PYTHON = os.path.join(VENV, "bin", "python")
PEER_MODULES = ("torch", "transformers", "peft")


def add_flag(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--hf_python", default=DEFAULT_PYTHON,
      help="interpreter with torch, transformers and peft (default: the "
      "repository's .venv-hf, built by `make hf-env`)")


def missing_message(python: str) -> str:
  return (f"the HF peer interpreter {python} does not exist: run `make "
          f"hf-env` in {REPO} (it builds .venv-hf from "
          f"requirements/hf-peer.txt), or pass --hf_python=PATH")


def check_python(python: str) -> str:
  """`python` if it exists; otherwise exits with one line saying what to do."""
  if not os.path.exists(python):
    sys.exit(f"{os.path.basename(sys.argv[0])}: {missing_message(python)}")
  return python


def has_peer_modules() -> bool:
  return all(importlib.util.find_spec(m) for m in PEER_MODULES)


_REEXEC = "LTA_HF_PEER_REEXEC"  # set in the re-run: never loop


def run_under_peer(argv: Optional[Sequence[str]] = None) -> None:
  """Re-runs this script under .venv-hf unless torch & co. import here.

  Returns only when the current interpreter has them; exits with one line
  when neither it nor .venv-hf does.
  """
  if has_peer_modules():
    return
  argv = list(sys.argv if argv is None else argv)
  if os.environ.get(_REEXEC):
    sys.exit(f"{os.path.basename(argv[0])}: {sys.executable} lacks one of "
             f"{', '.join(PEER_MODULES)}: run `make hf-env` in {REPO}")
  python = check_python(DEFAULT_PYTHON)
  os.environ[_REEXEC] = "1"
  os.execv(python, [python, *argv])
