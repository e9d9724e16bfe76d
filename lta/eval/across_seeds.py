"""Statistics of one number measured once per seed."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def stats(values: Sequence[float]) -> dict[str, float]:
  """Mean, sample std (0 for one value), min, max and n of finite values."""
  v = np.asarray([x for x in values if not math.isnan(x)], np.float64)
  if not v.size:
    nan = float("nan")
    return {"mean": nan, "std": nan, "min": nan, "max": nan, "n": 0}
  return {"mean": float(v.mean()),
          "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
          "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}
