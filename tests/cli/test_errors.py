"""Every row of docs/errors.md, made through a real entry point.

Each mistake must print exactly its documented message on one line, with
exit code 2 and no traceback; --debug shows the traceback instead.
"""

import os
import re
import subprocess
import sys

import pytest

from lta import errors
from lta.cli import main as cli
from tests.cli import error_cases

DOC = os.path.join(error_cases.REPO, "docs", "errors.md")


def _cells(row: str) -> list[str]:
  """A Markdown table row's cells; a `|` inside a code span is text."""
  cells, cell, in_code = [], "", False
  for char in row.strip()[1:-1]:
    if char == "`":
      in_code = not in_code
    if char == "|" and not in_code:
      cells.append(cell.strip())
      cell = ""
    else:
      cell += char
  return cells + [cell.strip()]


def documented_messages() -> dict[str, str]:
  """Mistake (without backticks) -> message, from the table in the doc."""
  rows = {}
  with open(DOC, encoding="utf-8") as f:
    lines = [l for l in f if l.startswith("| ")]
  for line in lines[1:]:  # the first is the header
    mistake, _, message = _cells(line)
    rows[mistake.replace("`", "")] = message.strip("`")
  return rows


DOCUMENTED = documented_messages()


def _pattern(message: str) -> re.Pattern:
  return re.compile(".*".join(re.escape(p) for p in message.split("…")))


def _run(case: error_cases.Case, tmp: str = ""):
  """(exit code, stdout, stderr) of `lta <argv>`; None: captured here."""
  argv = [a.replace("{tmp}", tmp) for a in case.argv]
  if case.adapters:
    error_cases.write_adapters(os.path.join(tmp, "adapters"))
  if case.subprocess:
    command = [sys.executable, "-m", "lta.cli.main", *argv]
    if case.offline:  # a network namespace with no interfaces: no network
      command = ["unshare", "--user", "--map-root-user", "--net", *command]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(command, cwd=error_cases.REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr
  return cli.main(argv), None, None


pytestmark = pytest.mark.usefixtures("clean_gin")


def test_every_documented_mistake_has_a_case_and_back():
  assert set(DOCUMENTED) == set(error_cases.CASES)


@pytest.mark.parametrize("mistake", sorted(error_cases.CASES))
def test_mistake_prints_its_documented_line(mistake, capsys, tmp_path):
  case = error_cases.CASES[mistake]
  code, out, err = _run(case, str(tmp_path))
  if out is None:
    out, err = capsys.readouterr()
  assert code == 2, (out, err)
  assert out == ""
  assert err.endswith("\n") and err.count("\n") == 1, err
  assert _pattern(DOCUMENTED[mistake]).fullmatch(err[:-1]), (
      f"\nprinted:    {err[:-1]}\ndocumented: {DOCUMENTED[mistake]}")


def test_debug_raises_instead_of_printing_one_line(capsys):
  """`lta --debug ...` lets the error out: Python prints its traceback."""
  case = error_cases.CASES["A string without quotes"]
  with pytest.raises(errors.ConfigError,
                     match=r"^--gin.MODEL_DIR=/tmp/x: Unable to parse") as e:
    cli.main(["--debug", *case.argv])
  assert isinstance(e.value.__cause__, SyntaxError)  # gin's own error
  assert capsys.readouterr().err == ""
