"""The figures of lta's layout, measured on the source tree.

Run `python -m tests.layout_figures` to print them; tests/test_layout.py
holds the tree to them. Measured with `ast` on every .py file under lta/:
a module's length is its line count; a function's length runs from its
`def` (or first decorator) to its last line, nested functions included.
"""

from __future__ import annotations

import ast
import os

from tests import import_graph

LTA = import_graph.LTA
# Plain modules at lta's top level: errors, partitioning, the API, and
# host_memory, which `import lta` runs before anything starts a thread.
MAX_PLAIN_MODULES = 4
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120
# lta's first-level parts, lowest first: each imports only parts before it.
LAYERS = ("errors", "host_memory", "partitioning", "adapters", "models",
          "checkpoints", "data", "languages", "arithmetic", "train", "eval",
          "synthetic", "pipeline", "jobs", "api", "cli")
JOBS = "jobs"


def _python_files(root: str = LTA):
  for dirpath, _, files in os.walk(root):
    for f in sorted(files):
      if f.endswith(".py"):
        yield os.path.join(dirpath, f)


def _rel(path: str, root: str) -> str:
  return os.path.relpath(path, os.path.dirname(os.path.abspath(root)))


def plain_modules(root: str = LTA) -> list[str]:
  """The modules directly in lta/, other than __init__.py."""
  return sorted(f for f in os.listdir(root)
                if f.endswith(".py") and f != "__init__.py")


def module_lines(root: str = LTA) -> dict[str, int]:
  found = {}
  for path in _python_files(root):
    with open(path, encoding="utf-8") as f:
      found[_rel(path, root)] = len(f.read().splitlines())
  return found


def function_lines(root: str = LTA) -> dict[str, int]:
  """{'lta/x.py:Class.function': lines} for every function and method."""
  found = {}
  for path in _python_files(root):
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)

    def visit(node, prefix):
      for child in ast.iter_child_nodes(node):
        name = prefix
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
          first = min([child.lineno] + [d.lineno for d in child.decorator_list])
          name = f"{prefix}{child.name}"
          found[f"{_rel(path, root)}:{name}"] = child.end_lineno - first + 1
          name += "."
        elif isinstance(child, ast.ClassDef):
          name = f"{prefix}{child.name}."
        visit(child, name)

    visit(tree, "")
  return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
  """Edges 'a -> b' where b is not below a in LAYERS (or a part is unknown)."""
  rank = {name: i for i, name in enumerate(LAYERS)}
  return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                if rank.get(b, len(LAYERS)) >= rank.get(a, -1))


def job_imports_job(root: str = LTA) -> list[str]:
  """'lta.jobs.a -> lta.jobs.b' for each import of a job by a job or by the
  pipeline layer (lta/pipeline)."""
  found = set()
  for module, names in import_graph.module_imports(root).items():
    if module.split(".")[1:2] not in (["jobs"], ["pipeline"]):
      continue
    for name in names:
      job = ".".join(name.split(".")[:3])
      if name.startswith("lta.jobs.") and job.split(".")[2:] != (
          module.split(".")[2:3]):
        found.add(f"{module} -> {job}")
  return sorted(found)


def main() -> None:
  graph = import_graph.import_graph()
  plain = plain_modules()
  lines = module_lines()
  functions = function_lines()
  longest_module = max(lines, key=lines.get)
  longest_function = max(functions, key=functions.get)
  print(f"plain modules in lta/: {len(plain)} ({', '.join(plain)}); "
        f"at most {MAX_PLAIN_MODULES}")
  print(f"longest module: {longest_module}, {lines[longest_module]} lines; "
        f"at most {MAX_MODULE_LINES}")
  print(f"longest function: {longest_function}, "
        f"{functions[longest_function]} lines; at most {MAX_FUNCTION_LINES}")
  print(f"cycles between lta's parts: {import_graph.cycles(graph)}")
  print(f"imports that do not go down {LAYERS}: {upward_imports(graph)}")
  print(f"job modules importing job modules: {job_imports_job()}")


if __name__ == "__main__":
  main()
