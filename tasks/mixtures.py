"""Mixtures for the companion study on zero-shot cross-lingual generation.

Two of the adaptation methods it compares are mixtures of data:

* mixing in target-language data: a source-language task plus unlabelled
  target-language text under the prefix-LM objective,
  `<family>_target_lm.<source>.<target>[_<target>...]`;
* several source languages: the task in several languages together,
  `<family>_multi.<source>_<source>[...]`;

and intermediate tuning's unlabelled text of several languages,
`mc4_prefix_lm_mix.<lang>_<lang>[...]`.

`<family>` is `xlsum` or `tydiqa_goldp`. Register more with
`register_target_lm_mixture` / `register_multi_source_mixture`, also from
gin: `MIXTURE_OR_TASK_NAME = @register_multi_source_mixture()` registers the
mixture when the run starts and trains on it (gin/experiments/study_*.gin).
This module pre-registers the English-source target-LM mixture for every
zero-shot language of each family. The multi-source mixture of all seen XL-Sum
languages is `xlsum_seen` (the paper's multilingual baseline).
"""

from typing import Callable, Sequence, Union

import gin
import seqio

from lta.languages.related import XLSUM_UNSEEN

from . import mc4
from . import tydiqa
from . import xlsum

Rate = Union[float, Callable[[seqio.Task], float]]

# Family -> (task name for a language, default rate between languages).
# TyDi QA tasks are filters of one all-language TFDS split, so their
# example counts are not per language: weigh them equally.
FAMILIES = {
    "xlsum": (xlsum.task_name, xlsum.xlsum_mixing_rate),
    "tydiqa_goldp": (tydiqa.task_name, 1.0),
}


def _task_name(family: str, lang: str) -> str:
  if family not in FAMILIES:
    raise ValueError(f"unknown task family '{family}'; known: {sorted(FAMILIES)}")
  name = FAMILIES[family][0](lang)
  if name not in seqio.TaskRegistry.names():
    raise ValueError(f"no task '{name}' for language '{lang}' in '{family}'")
  return name


def _lm_task_name(lang: str) -> str:
  name = mc4.task_name(lang)
  if name not in seqio.TaskRegistry.names():
    raise ValueError(f"no mC4 prefix-LM task for language '{lang}'")
  return name


def _add_mixture(name: str, tasks, **kwargs) -> None:
  # Registering the same name again replaces the mixture, so a run may
  # (re)define its mixture from gin without clashing with the defaults.
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, tasks, **kwargs)


def target_lm_mixture_name(family: str, source: str, targets: Sequence[str]) -> str:
  return f"{family}_target_lm.{source}.{'_'.join(targets)}"


def multi_source_mixture_name(family: str, sources: Sequence[str]) -> str:
  return f"{family}_multi.{'_'.join(sources)}"


@gin.configurable
def register_target_lm_mixture(
    family: str,
    source: str,
    targets: Sequence[str],
    lm_fraction: float = 0.5,
) -> str:
  """Registers source-language task data mixed with target-language text.

  Args:
    family: "xlsum" or "tydiqa_goldp".
    source: language of the labelled task data.
    targets: languages whose mC4 text is mixed in (prefix-LM), one or more.
    lm_fraction: share of training examples drawn from the target-language
      text, split equally between `targets`; the rest is task data.

  Returns:
    The mixture name, `<family>_target_lm.<source>.<targets joined by _>`.
  """
  if not targets:
    raise ValueError("register_target_lm_mixture needs at least one target")
  if not 0.0 < lm_fraction < 1.0:
    raise ValueError(f"lm_fraction must be in (0, 1), got {lm_fraction}")
  name = target_lm_mixture_name(family, source, targets)
  entries = [(_task_name(family, source), 1.0 - lm_fraction)]
  entries += [(_lm_task_name(t), lm_fraction / len(targets)) for t in targets]
  _add_mixture(name, entries)
  return name


@gin.configurable
def register_multi_source_mixture(
    family: str,
    sources: Sequence[str],
    rate: Rate | None = None,
) -> str:
  """Registers the task in several source languages mixed together.

  Args:
    family: "xlsum" or "tydiqa_goldp".
    sources: the source languages (two or more).
    rate: rate per language; None takes the family default (examples-
      proportional for XL-Sum, `xlsum_mixing_rate`; equal for TyDi QA).

  Returns:
    The mixture name, `<family>_multi.<sources joined by _>`.
  """
  if len(sources) < 2:
    raise ValueError(f"a multi-source mixture needs 2+ languages, got {sources}")
  name = multi_source_mixture_name(family, sources)
  if rate is None:
    rate = FAMILIES[family][1] if family in FAMILIES else 1.0
  _add_mixture(
      name, [_task_name(family, s) for s in sources], default_rate=rate
  )
  return name


def lm_mixture_name(languages: Sequence[str]) -> str:
  return f"mc4_prefix_lm_mix.{'_'.join(languages)}"


@gin.configurable
def register_lm_mixture(languages: Sequence[str]) -> str:
  """Registers unlabelled text of several languages, prefix-LM, equal rates:
  the data of the companion study's intermediate tuning.

  Returns:
    The mixture name, `mc4_prefix_lm_mix.<languages joined by _>`.
  """
  if len(languages) < 2:
    raise ValueError(f"an LM mixture needs 2+ languages, got {languages} "
                     f"(one language is the task {mc4.task_name('xx')[:-2]}<lang>)")
  name = lm_mixture_name(languages)
  _add_mixture(name, [_lm_task_name(lang) for lang in languages],
               default_rate=1.0)
  return name


for _target in XLSUM_UNSEEN:
  register_target_lm_mixture("xlsum", "en", [_target])
for _target in tydiqa.TYDIQA_LANGS:
  if _target != "en":
    register_target_lm_mixture("tydiqa_goldp", "en", [_target])
