"""lta's first-level parts import each other without a cycle; jobs call
layers, never other jobs."""

from tests import import_graph


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


def test_no_job_imports_another_job_and_the_pipeline_imports_no_job():
  imports = import_graph.module_imports()
  jobs = {m for m in imports if m.startswith("lta.jobs.")}
  assert {"lta.jobs.evaluate", "lta.jobs.miniature"} <= jobs
  for module, names in imports.items():
    if module in jobs or module.startswith("lta.pipeline"):
      reached = {n for n in names
                 if n == "lta.jobs" or n.startswith("lta.jobs.")} - {module}
      assert not reached, f"{module} imports {sorted(reached)}"
