"""Language identification for the synthetic world, by lexicon lookup.

fastText LID knows nothing of synthetic languages, so here a text's
language is read off its words: each language's share is the fraction of
the text's words in that language's lexicon, and the text is in language L
when L's share is the largest, strictly. Related languages share content
words but never function morphemes (adpositions, verb suffixes), so every
well-formed sentence has a word that breaks the tie; a text whose words
belong equally to two languages (or to none) is in no language.

`LexiconIndex` is a `lta.eval.langid.LanguageIdentifier`: language fidelity
on the world is `langid.language_fidelity(predictions, lang,
LexiconIndex(world))`, and its seqio metric
`metrics.make_language_fidelity_metric(lang, LexiconIndex(world))`.
"""

from __future__ import annotations

from typing import Optional, Sequence

from lta.eval import langid
from lta.synthetic import grammar
from lta.synthetic import world as world_lib


class LexiconIndex:
  """Surface token -> the languages whose lexicon holds it.

  world: a WorldInfo or the path of a world (its directory or world.json).
  """

  name = "synthetic-world lexicon"

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

  def language_of(self, text: str) -> Optional[str]:
    """The language with the strictly largest share, or None."""
    shares = self.shares(text)
    best = max(shares.values())
    winners = [c for c, s in shares.items() if s == best]
    return winners[0] if best > 0 and len(winners) == 1 else None

  def label(self, lang: str) -> str:
    if lang not in self.languages:
      raise langid.UndetectableLanguageError(
          f"{lang!r} is not a language of this world {list(self.languages)}")
    return lang

  def identify(self, texts: Sequence[str]) -> list[Optional[str]]:
    return [self.language_of(text) for text in texts]


def language_shares(text: str, world: world_lib.WorldLike) -> dict[str, float]:
  return LexiconIndex(world).shares(text)


def identify(text: str, world: world_lib.WorldLike) -> Optional[str]:
  return LexiconIndex(world).language_of(text)
