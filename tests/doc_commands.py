"""The shell command examples of README.md and docs/*.md, and how a test
runs them on the tiny model (tests/test_doc_commands.py).

An example is a command in a ```bash (or unlabelled, sh, shell, console)
block or in an indented block that starts with one of COMMAND_WORDS, with
its `\\` continuations; a `for VAR in ...; do ...; done` loop is one example.
The shell itself expands each example (variables, quotes, `$(...)`), with
the documented variables set to tiny local paths, so the argv an entry point
gets is the one a user's shell would give it. Two kinds of documentation
line are settings, not commands: `export NAME=VALUE` sets an environment
variable for the examples after it, and `... FLAGS` (a fragment) adds FLAGS
to every later `lta train` and `lta eval` that does not bind them itself.
"""

import dataclasses
import os
import re
import subprocess
from typing import Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("README.md", *sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(REPO, "docs"))
    if f.endswith(".md")))
COMMAND_WORDS = ("lta", "python", "make", "pytest", "export", "for", "...")
SHELL_LANGS = ("", "bash", "sh", "shell", "console")


@dataclasses.dataclass(frozen=True)
class Example:
  path: str  # README.md or docs/x.md
  line: int  # 1-based, where it starts
  text: str  # as written, continuations joined, comments kept

  @property
  def words(self) -> list[str]:
    return self.text.split()

  @property
  def key(self) -> str:
    """A name that survives edits around it: file and first line."""
    first = self.text.split("\n", 1)[0].split(" #", 1)[0]
    words = first.rstrip(" \\").split()
    return f"{self.path}: {' '.join(words)}"

  @property
  def is_setting(self) -> bool:
    return self.words[0] in ("export", "...")


def _blocks(text: str):
  """(first line number, lines) of every shell code block of a Markdown file."""
  lines = text.split("\n")
  i = 0
  while i < len(lines):
    fence = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
    if fence:
      indent, lang = fence.groups()
      end = i + 1
      while not re.match(r"^\s*```\s*$", lines[end]):
        end += 1
      if lang in SHELL_LANGS:
        yield i + 2, [l[len(indent):] for l in lines[i + 1:end]]
      i = end + 1
    elif (lines[i].startswith("    ") and lines[i].strip() and
          (i == 0 or not lines[i - 1].strip())):
      end = i
      while end < len(lines) and (lines[end].startswith("    ") or
                                  not lines[end].strip()):
        end += 1
      yield i + 1, [l[4:] for l in lines[i:end]]
      i = end
    else:
      i += 1


def _commands(first: int, lines: list[str]):
  """(line number, text) of each command of a block."""
  i = 0
  while i < len(lines):
    words = lines[i].split()
    if not words or words[0] not in COMMAND_WORDS and not (
        words[0].startswith("launch/")):
      i += 1
      continue
    start, text = i, lines[i]
    if words[0] == "for":  # up to its `done`
      while not re.match(r"^\s*done\b", lines[i]):
        i += 1
        text += "\n" + lines[i]
    while text.rstrip().endswith("\\"):
      i += 1
      text += "\n" + lines[i]
    yield first + start, text
    i += 1


def examples() -> list[Example]:
  found = []
  for path in DOCS:
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
      text = f.read()
    for first, lines in _blocks(text):
      for line, command in _commands(first, lines):
        found.append(Example(path, line, command))
  return found


# --- Running an example on the tiny model -----------------------------------

TINY_BASE = os.path.join(REPO, "tests", "fixtures", "hf", "mt5_tiny")
TINY_GIN = os.path.join(REPO, "tests", "fixtures", "hf", "mt5_tiny.gin")
# The tiny world's languages that the examples use: en is the source, pt
# and uk the targets of README's and experiments' compositions.
WORLD_LANGUAGES = ("en", "pt", "uk")
TINY_LENGTHS = "{'inputs': 32, 'targets': 8}"

# What changes so that a documented command runs here in seconds. Each
# rewrite keeps the command, its gin files, bindings and flags; values are
# replaced only where the documented one names a machine or a size.
#   the documented paths          -> directories of the test
PATH_REWRITES = (
    ("/data/mt5-base", "$MT5_BASE"),  # README's base checkpoint
    ("/data/", "$DATA/"), ("/runs/", "$RUNS/"), ("/tmp/", "$TMP/"))
#   models/mt5_*.gin              -> the tiny checkpoint's architecture
MODEL_GIN = re.compile(r"models/mt5_\w+\.gin")
#   prepare-data's language lists -> the tiny world's languages
LANGUAGE_FLAGS = re.compile(r"--(xlsum|mc4)_languages=\S+")
#   --mode=local of lta sweep     -> --mode=print, and the test runs one job
#     in-process (each local job is a fresh process of ~20 s)
SWEEP_LOCAL = "--mode=local"


def appended_flags(argv: list[str]) -> list[str]:
  """Overrides added after a documented lta train / eval command: sizes."""
  command = argv[1] if argv[0] == "lta" else argv[2].rsplit(".", 1)[-1]
  binds = lambda name: any(a.startswith(f"--gin.{name}=") for a in argv)
  if command == "train":  # experiments' files include models/mt5_base.gin
    return [f"--gin_file={TINY_GIN}", "--gin.TRAIN_STEPS=2",
            "--gin.BATCH_SIZE=8", f"--gin.TASK_FEATURE_LENGTHS={TINY_LENGTHS}"]
  if command == "eval":
    extra = [f"--gin.TASK_FEATURE_LENGTHS={TINY_LENGTHS}",
             "--gin.run_eval.max_examples=2", "--gin.run_eval.batch_size=8"]
    if not binds("run_eval.tasks"):  # the 11 XL-Sum-unseen languages
      extra.append(f"--gin.run_eval.tasks={[f'xlsum.{l}' for l in ('pt', 'uk')]}")
    if any(re.search(r"experiments/table\d", a) for a in argv) and not binds(
        "LAMBDA"):
      extra.append("--gin.LAMBDA=[0.5]")  # the tables' grid has 7
    return extra
  return []


def rewrite(text: str) -> str:
  """The example's text with PATH_REWRITES, MODEL_GIN, LANGUAGE_FLAGS."""
  for old, new in PATH_REWRITES:
    text = re.sub(rf"(?<![\w$]){re.escape(old)}", new, text)
  text = MODEL_GIN.sub(TINY_GIN, text)
  return LANGUAGE_FLAGS.sub(
      lambda m: f"--{m.group(1)}_languages={','.join(WORLD_LANGUAGES)}", text)


def shell_words(text: str, env: dict[str, str]) -> list[str]:
  """argv of a one-command text, as bash would pass it (no command runs)."""
  proc = subprocess.run(
      ["bash", "-c", 'set -eu; eval "printf \'%s\\0\' $1"', "bash", text],
      env=env, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.split("\0")[:-1]


_FOR = re.compile(r"^for (\w+) in ([^;]*?);?\s*do\s*\n?(.*?)\n?\s*done\s*$",
                  re.S)


def loop_runs(text: str) -> Optional[tuple[str, list[str], str]]:
  """(variable, the values the test runs, body) of a `for` example.

  A loop over language codes runs for WORLD_LANGUAGES among them; any other
  loop for every value.
  """
  loop = _FOR.match(text.strip())
  if not loop:
    return None
  variable, values, body = loop.groups()
  values = values.replace("\\\n", " ").split()
  if all(re.fullmatch(r"[a-z]{2}", v) for v in values):
    values = [v for v in values if v in WORLD_LANGUAGES]
  return variable, values, body
