"""lta's first-level parts import each other without a cycle."""

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
