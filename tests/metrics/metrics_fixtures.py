"""Reads the multilingual fixture files under tests/fixtures/metrics/."""

import json
import os

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                        "fixtures", "metrics")


def read_jsonl(name):
  with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
