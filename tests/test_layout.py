"""lta's layers: no cycle, imports go down, jobs call layers and never other
jobs, and the size limits hold (`python -m tests.layout_figures` prints the
figures)."""

import os

from tests import import_graph
from tests import layout_figures


def test_no_import_cycle_between_lta_parts():
  graph = import_graph.import_graph()
  # The graph sees the parts this test is about, and the edges between them.
  assert {"models", "adapters", "checkpoints", "cli", "synthetic", "data",
          "train"} <= set(graph)
  assert "adapters" in graph["models"] and "models" in graph["checkpoints"]
  assert import_graph.cycles(graph) == []


def test_cycles_are_found():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
  assert import_graph.cycles(graph) == [["a", "b", "c"]]


def test_the_layout_figures_hold():
  graph = import_graph.import_graph()
  plain = layout_figures.plain_modules()
  assert len(plain) <= layout_figures.MAX_PLAIN_MODULES, plain
  too_long = {m: n for m, n in layout_figures.module_lines().items()
              if n > layout_figures.MAX_MODULE_LINES}
  assert not too_long
  too_long = {f: n for f, n in layout_figures.function_lines().items()
              if n > layout_figures.MAX_FUNCTION_LINES}
  assert not too_long
  assert set(graph) <= set(layout_figures.LAYERS)
  assert layout_figures.upward_imports(graph) == []
  jobs = {m for m in import_graph.module_imports() if m.startswith("lta.jobs.")}
  assert {"lta.jobs.evaluate", "lta.jobs.miniature", "lta.jobs.merge"} <= jobs
  assert layout_figures.job_imports_job() == []


def test_the_figures_catch_what_they_measure(tmp_path):
  root = tmp_path / "lta"
  (root / "jobs").mkdir(parents=True)
  (root / "pipeline").mkdir()
  (root / "jobs" / "a.py").write_text(
      "from lta.jobs import b\n\n\n@decorator\ndef f():\n  def g():\n"
      "    return 1\n  return g\n")
  (root / "jobs" / "b.py").write_text("import lta.jobs.b\n")
  (root / "pipeline" / "run.py").write_text("from lta.jobs import a\n")
  (root / "c.py").write_text("")
  assert layout_figures.plain_modules(str(root)) == ["c.py"]
  lines = layout_figures.function_lines(str(root))
  assert lines[os.path.join("lta", "jobs", "a.py:f")] == 5
  assert lines[os.path.join("lta", "jobs", "a.py:f.g")] == 2
  assert layout_figures.job_imports_job(str(root)) == [
      "lta.jobs.a -> lta.jobs.b", "lta.pipeline.run -> lta.jobs.a"]
  assert layout_figures.upward_imports(
      {"models": {"adapters"}, "adapters": {"models"}, "cli": {"jobs"}}) == [
          "adapters -> models"]


def test_docs_internals_lists_every_module():
  with open(os.path.join(os.path.dirname(import_graph.LTA), "docs",
                         "internals.md"), encoding="utf-8") as f:
    text = f.read()
  modules = [m for m in layout_figures.module_lines()
             if not m.endswith("__init__.py")]
  assert len(modules) > 60
  assert [m for m in modules if f"`{m}`" not in text] == []
