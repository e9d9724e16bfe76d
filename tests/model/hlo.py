"""Reads XLA's optimized HLO text: what a compiled decoding loop copies."""

import numpy as np


def _elements(hlo_shape: str) -> int:
  dims = hlo_shape[hlo_shape.index("[") + 1:hlo_shape.index("]")]
  return int(np.prod([int(d) for d in dims.split(",") if d]))


def loop_body_copies(compiled_text: str, min_elements: int) -> list[str]:
  """Shapes of the copies and transposes of at least `min_elements` that a
  compiled program runs inside a while loop's body (each decoding step)."""
  body = [line for line in compiled_text.splitlines() if "while/body" in line]
  if not body:
    raise AssertionError("no while loop found in the compiled program")
  moves = [line.split("=")[1].split()[0] for line in body
           if " copy(" in line or " transpose(" in line]
  return [shape for shape in moves if _elements(shape) >= min_elements]
