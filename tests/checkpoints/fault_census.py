"""Counts how the loaders treat the fault harness's damaged files.

  .venv/bin/python -m tests.checkpoints.fault_census

Runs every case of test_corrupt_files.py against the lta that is imported
and prints how many were: refused as the harness requires (an LtaError
with a one-line message naming the file), refused otherwise (another
exception type, a message that does not name the file or spans lines), or
accepted. Run it on another checkout (PYTHONPATH=that checkout) to compare.
"""

import collections
import os
import sys
import tempfile

from lta.checkpoints import hf
from lta.errors import LtaError
from tests.checkpoints import hf_fixtures as fx
from tests.checkpoints import test_corrupt_files as harness


def outcome(error, target) -> str:
  if error is None:
    return "accepted"
  message = str(error)
  names_file = target in message or os.path.basename(target) in message
  if isinstance(error, LtaError):
    if target in message and "\n" not in message:
      return "LtaError, one line, names the file"
    return "LtaError, but not one line naming the file"
  if names_file:
    return "other exception naming the file"
  return "other exception not naming the file"


def main():
  config = hf.load_hf_checkpoint(fx.MT5)[0]
  counts = collections.Counter()
  types = collections.Counter()
  with tempfile.TemporaryDirectory() as root:
    pristine = harness.make_pristine(os.path.join(root, "pristine"), config)
    for i, (fixture, name, what, mutate) in enumerate(harness.CASES):
      try:
        target = harness.damage(pristine, fixture, name, mutate,
                                os.path.join(root, str(i)))
      except (KeyError, IndexError):  # e.g. a field older files lack
        counts["damage not applicable to this checkout's files"] += 1
        continue
      try:
        harness.load(fixture, os.path.dirname(target), config)
        error = None
      except Exception as e:  # pylint: disable=broad-except
        error = e
      result = outcome(error, target)
      counts[result] += 1
      if error is not None and not isinstance(error, LtaError):
        types[type(error).__name__] += 1
      if "-v" in sys.argv:
        print(f"{fixture}/{name}/{what}: {result}"
              + (f" ({type(error).__name__})" if error else ""))
  for result, n in sorted(counts.items()):
    print(f"{n:4d}  {result}")
  print(f"{sum(counts.values()):4d}  cases; other exception types: "
        f"{dict(sorted(types.items()))}")


if __name__ == "__main__":
  main()
