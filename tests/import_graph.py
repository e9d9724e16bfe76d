"""The import graph between lta's first-level parts, and its cycles.

A node is a subpackage of lta (lta/model, lta/peft, ...) or a plain module
directly in lta/ (lta/train/loop.py is 'trainer'). Every import written in a
module counts, at any depth (a lazy import inside a function is still an
edge), except those under `if TYPE_CHECKING:`, which never run: they are
kept apart as type-only edges. Run `python -m tests.import_graph` to print
the edges, the type-only edges and the cycles.
"""

from __future__ import annotations

import ast
import os
import sys

LTA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "lta")


def _node_of_file(path: str) -> str:
  first = os.path.relpath(path, LTA).split(os.sep)[0]
  return first[:-3] if first.endswith(".py") else first


def _type_checking_imports(tree: ast.AST) -> set[int]:
  """ids of the import nodes under `if TYPE_CHECKING:`."""
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
      found.update(id(n) for stmt in node.body for n in ast.walk(stmt)
                   if isinstance(n, (ast.Import, ast.ImportFrom)))
  return found


def _imported_modules(tree: ast.AST, module: str, is_package: bool,
                      type_only: bool):
  skip_or_keep = _type_checking_imports(tree)
  for node in ast.walk(tree):
    if (id(node) in skip_or_keep) != type_only:
      continue
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # relative: resolve against this module's package
        parts = module.split(".")
        base = parts if is_package else parts[:-1]
        base = base[:len(base) - node.level + 1]
        name = ".".join(base + ([node.module] if node.module else []))
      else:
        name = node.module or ""
      yield name
      yield from (f"{name}.{alias.name}" for alias in node.names)


def import_graph(root: str = LTA,
                 type_only: bool = False) -> dict[str, set[str]]:
  """{node: nodes it imports}, over every .py file under `root`; with
  `type_only`, the imports under `if TYPE_CHECKING:` instead."""
  nodes = {n[:-3] if n.endswith(".py") else n for n in os.listdir(root)
           if n != "__init__.py" and (n.endswith(".py") or any(
               f.endswith(".py") for f in os.listdir(os.path.join(root, n))))
           and not n.startswith((".", "_"))}
  graph: dict[str, set[str]] = {n: set() for n in nodes}
  for dirpath, _, files in os.walk(root):
    for f in files:
      if not f.endswith(".py"):
        continue
      path = os.path.join(dirpath, f)
      rel = os.path.relpath(path, os.path.dirname(root))[:-3]
      module = rel.replace(os.sep, ".")
      is_package = f == "__init__.py"
      if is_package:
        module = module.rsplit(".", 1)[0]
      source = _node_of_file(path)
      if source == "__init__":
        continue
      with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
      for name in _imported_modules(tree, module, is_package, type_only):
        parts = name.split(".")
        if parts[0] == "lta" and len(parts) > 1 and parts[1] in nodes:
          if parts[1] != source:
            graph.setdefault(source, set()).add(parts[1])
  return graph


def module_imports(root: str = LTA) -> dict[str, set[str]]:
  """{module: the lta modules and packages it imports}, by dotted name
  (lta.jobs.evaluate), over every .py file under `root`; lazy imports count,
  those under `if TYPE_CHECKING:` do not."""
  found: dict[str, set[str]] = {}
  for dirpath, _, files in os.walk(root):
    for f in sorted(files):
      if not f.endswith(".py"):
        continue
      path = os.path.join(dirpath, f)
      module = os.path.relpath(path, os.path.dirname(root))[:-3].replace(
          os.sep, ".")
      is_package = f == "__init__.py"
      if is_package:
        module = module.rsplit(".", 1)[0]
      with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
      found[module] = {name for name in _imported_modules(
          tree, module, is_package, type_only=False)
                       if name == "lta" or name.startswith("lta.")}
  return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one node (Tarjan)."""
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  on_stack: set[str] = set()
  found: list[list[str]] = []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
  for v in sorted(graph):
    if v not in index:
      visit(v)
  return sorted(found)


def main() -> None:
  graph = import_graph()
  for node in sorted(graph):
    print(f"{node} -> {', '.join(sorted(graph[node])) or '(nothing)'}")
  type_only = import_graph(type_only=True)
  print("\ntype-only (under TYPE_CHECKING):")
  for node in sorted(n for n in type_only if type_only[n]):
    print(f"  {node} -> {', '.join(sorted(type_only[node]))}")
  found = cycles(graph)
  print(f"\n{len(found)} cycle(s)" + "".join(
      f"\n  {' <-> '.join(c)}" for c in found))


if __name__ == "__main__":
  main()
