"""Language identification for the synthetic world, by lexicon lookup.

fastText LID knows nothing of synthetic languages, so here a text's
language is read off its words: each language's share is the fraction of
the text's words in that language's lexicon, and the text is in language L
when L's share is the largest, strictly. Related languages share content
words but never function morphemes (adpositions, verb suffixes), so every
well-formed sentence has a word that breaks the tie; a text whose words
belong equally to two languages (or to none) is in no language.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from lta.synthetic import grammar
from lta.synthetic import world as world_lib


class LexiconIndex:
  """Surface token -> the languages whose lexicon holds it."""

  def __init__(self, world: world_lib.WorldLike):
    world = world_lib.as_world(world)
    self.languages = tuple(world.languages)
    owners: dict[str, list[str]] = {}
    for code, language in world.languages.items():
      for token in language.token_meanings():
        owners.setdefault(token, []).append(code)
    self._owners = {t: tuple(c) for t, c in owners.items()}

  def shares(self, text: str) -> dict[str, float]:
    """{language: share of the text's words in its lexicon}; 0 when empty."""
    words = grammar.split_words(text)
    counts = dict.fromkeys(self.languages, 0)
    for word in words:
      for code in self._owners.get(word, ()):
        counts[code] += 1
    return {c: (n / len(words) if words else 0.0) for c, n in counts.items()}

  def identify(self, text: str) -> Optional[str]:
    """The language with the strictly largest share, or None."""
    shares = self.shares(text)
    best = max(shares.values())
    winners = [c for c, s in shares.items() if s == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def language_shares(text: str, world: world_lib.WorldLike) -> dict[str, float]:
  return LexiconIndex(world).shares(text)


def identify(text: str, world: world_lib.WorldLike) -> Optional[str]:
  return LexiconIndex(world).identify(text)


def _check_language(lang: str, index: LexiconIndex) -> None:
  if lang not in index.languages:
    raise ValueError(f"{lang!r} is not a language of this world "
                     f"{list(index.languages)}")


def language_matches(predictions: Sequence[str], lang: str,
                     world: world_lib.WorldLike) -> np.ndarray:
  """Whether each prediction is identified as `lang` (empty: False)."""
  index = LexiconIndex(world)
  _check_language(lang, index)
  return np.array([index.identify(p) == lang for p in predictions], dtype=bool)


def language_fidelity(predictions: Sequence[str], lang: str,
                      world: world_lib.WorldLike) -> float:
  """Percentage (0-100) of predictions identified as `lang`.

  The synthetic counterpart of `lta.eval.metrics.language_fidelity`; `world` is
  a WorldInfo or the path of a world (its directory or world.json).
  """
  if not len(predictions):
    raise ValueError("no predictions to identify")
  return 100.0 * float(np.mean(language_matches(predictions, lang, world)))


def make_language_fidelity_metric(lang: str, world: world_lib.WorldLike
                                  ) -> Callable[[Sequence, Sequence[str]],
                                                Mapping[str, float]]:
  """seqio metric fn returning {'language_fidelity': percent}."""
  world = world_lib.as_world(world)

  def language_fidelity_metric(targets, predictions):
    del targets  # Fidelity looks at the predictions only.
    return {"language_fidelity": language_fidelity(predictions, lang, world)}

  return language_fidelity_metric
