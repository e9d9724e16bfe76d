"""What each evaluated method is called: the one table of row labels.

Keys are the composition names of `lta.arithmetic.compositions` plus the baselines that
are not compositions. `label` is the row name of the paper's tables
(Chronopoulou et al. 2023, Tables 1-4), `short` fits a legend or an axis,
`equation` is the formula in plain text. Tables, plots, the pipeline and
`lta report` all read labels from here; nothing else spells them.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from lta import errors


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  label: str
  short: str
  equation: str
  reference: str  # where the paper defines or reports it
  uses_lambda: bool = False
  # Built from one task vector's source: rows of different sources differ.
  single_source: bool = False


# In the order of the paper's rows: baselines first.
_ALL = (
    Method("base", "Base model (no adapter)", "base", "θ_0",
           "the frozen model alone"),
    Method("task_vector", "Task vector ({source})", "task {source}",
           "θ_task;S", "one trained adapter, as is", single_source=True),
    Method("baseline_best", "Baseline (best)", "best single task vector",
           "max over S of score(θ_task;S), per target", "Tables 2 and 3"),
    Method("baseline_multilingual", "Baseline (multilingual)", "multilingual",
           "θ_task;S_1..S_N, one adapter trained on all sources",
           "Tables 2 and 3"),
    Method("task_only", "Baseline (task vector only)", "task vector",
           "θ_task;S", "Tables 1 and 4, Figure 2", single_source=True),
    Method("lang_task_add", "Language and Task (Add)", "+ lang",
           "λ·θ_task;S + (1−λ)·θ_LM;T", "Eq. 1, Tables 1 and 4",
           uses_lambda=True, single_source=True),
    Method("lang_task_add_subtract", "Language and Task (Add and Subtract)",
           "+ lang − lang_src", "λ·θ_task;S + (1−λ)·(θ_LM;T − θ_LM;S)",
           "Eq. 2, Tables 1 and 4, Figure 2", uses_lambda=True,
           single_source=True),
    Method("task_only_add_all", "Task-only (Add all)", "mean of all tasks",
           "(1/N)·Σ_i θ_task;S_i", "Eq. 3 with L = N, Tables 2 and 3"),
    Method("task_only_add_related", "Task-only (Add related)",
           "mean of related tasks", "(1/L)·Σ_i θ_task;S_i, S_i related to T",
           "Eq. 3, Tables 2 and 3"),
    Method("lang_task_add_subtract_related",
           "Language and Task (Add and Subtract related)",
           "+ lang − lang_related", "λ·θ'_task;S + (1−λ)·(θ_LM;T − θ'_LM;S)",
           "Eq. 4, Table 2", uses_lambda=True),
)
METHODS: dict[str, Method] = {m.name: m for m in _ALL}


def get(name: str) -> Method:
  if name not in METHODS:
    raise errors.ConfigError(
        f"Unknown method {name!r}{errors.did_you_mean(name, METHODS)}; known: "
        f"{', '.join(METHODS)}")
  return METHODS[name]


def label(name: str, sources: Sequence[str] = ()) -> str:
  """The paper's row name of `name`; '{source}' is filled from `sources`."""
  return get(name).label.format(source=_languages(sources))


def short_label(name: str, sources: Sequence[str] = ()) -> str:
  return get(name).short.format(source=_languages(sources))


def instance_label(name: str, lam: float, sources: Sequence[str] = ()) -> str:
  """One composed adapter, for progress lines: '+ lang, λ=0.7'."""
  text = short_label(name, sources)
  return f"{text}, λ={lam:g}" if get(name).uses_lambda else text


def _languages(codes: Sequence[str]) -> str:
  return "+".join(c.capitalize() for c in codes) or "?"
