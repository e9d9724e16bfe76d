"""Exact scores for the synthetic summarization task.

Summaries are a deterministic function of the document, so a prediction is
right or wrong. `headline_scores` separates the two ways to be wrong that
the paper cares about: the wrong content, and the right content in the
wrong language (typically the source's).
"""

from __future__ import annotations

from typing import Optional, Sequence

from lta.synthetic import grammar
from lta.synthetic import world as world_lib


def _content(text: str, world: world_lib.WorldInfo
             ) -> Optional[grammar.Headline]:
  """The headline content of `text` read in any language, or None."""
  for language in world.languages.values():
    try:
      return grammar.parse_headline(text, language)
    except ValueError:
      continue
  return None


def headline_scores(targets: Sequence[str], predictions: Sequence[str],
                    lang: str, world: world_lib.WorldLike
                    ) -> dict[str, float]:
  """Percentages over examples.

  Args:
    targets: reference summaries in `lang`.
    predictions: generated summaries.
    lang: the language the predictions should be in.
    world: a WorldInfo or a world's path.

  Returns:
    exact_match: the prediction is the reference (whitespace-stripped).
    content_any_language: the prediction is a well-formed headline, in some
      language of the world, with the reference's content.
  """
  world = world_lib.as_world(world)
  if lang not in world.languages:
    raise ValueError(f"{lang!r} is not a language of this world "
                     f"{list(world.languages)}")
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} "
                     f"predictions")
  if not len(targets):
    raise ValueError("no predictions to score")
  exact = content = 0
  for target, prediction in zip(targets, predictions):
    want = grammar.parse_headline(target, world.languages[lang])
    exact += prediction.strip() == target.strip()
    content += _content(prediction, world) == want
  n = len(targets)
  return {"exact_match": 100.0 * exact / n,
          "content_any_language": 100.0 * content / n}
