"""A grid of paired effects (rows × columns) as Markdown and as a heatmap.

The paper's Figure 2 is such a grid: the source language of the task
vector in rows, the target in columns, add-and-subtract minus its baseline
in the cells. Cells are lta.eval.paired_bootstrap effects (dicts).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from lta.eval import paired_bootstrap
from lta.eval import report as reporting

Grid = Mapping[str, Mapping[str, Mapping[str, Any]]]  # row -> col -> effect


def _effect(cell: Mapping[str, Any]) -> paired_bootstrap.PairedEffect:
  return paired_bootstrap.PairedEffect(
      **{k: v for k, v in cell.items() if k != "outcome"})


def markdown(grid: Grid, rows: Sequence[str], cols: Sequence[str],
             corner: str) -> str:
  """Rows × cols of `mean [low, high]` with ▲/▼ where the interval excludes 0."""
  lines = [f"| {corner} | " + " | ".join(c.capitalize() for c in cols) + " |",
           "|---|" + "---:|" * len(cols)]
  for r in rows:
    lines.append(f"| {r} | " + " | ".join(
        paired_bootstrap.effect_cell(_effect(grid[r][c])) for c in cols)
                 + " |")
  return "\n".join(lines) + "\n"


def plot(grid: Grid, rows: Sequence[str], cols: Sequence[str], path: str,
         title: str, row_label: str, col_label: str) -> str:
  """Means coloured around 0; each cell also prints its interval."""
  plt = reporting._pyplot()  # pylint: disable=protected-access
  means = np.array([[grid[r][c]["mean"] for c in cols] for r in rows])
  limit = float(np.max(np.abs(means))) or 1.0
  fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 1.5,
                                  0.7 * len(rows) + 1.2))
  image = ax.imshow(means, cmap="RdBu", vmin=-limit, vmax=limit)
  for i, r in enumerate(rows):
    for j, c in enumerate(cols):
      cell = grid[r][c]
      ax.text(j, i, f"{cell['mean']:+.1f}\n[{cell['low']:+.1f}, "
              f"{cell['high']:+.1f}]", ha="center", va="center", fontsize=7)
  ax.set_xticks(range(len(cols)), [c.capitalize() for c in cols])
  ax.set_yticks(range(len(rows)), list(rows))
  ax.set_xlabel(col_label)
  ax.set_ylabel(row_label)
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, shrink=0.8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
