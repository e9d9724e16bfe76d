"""The shared content (events) and how a language renders and parses it.

A sentence renders one event; a document is a sequence of events; its
summary (the task) is the headline of the first event: subject, verb in the
present tense, object, without adjectives or place. Parsing inverts
rendering exactly, so tests and evaluations can compare content across
languages.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from lta.synthetic import languages

_PUNCTUATION = ".,;:!?"


@dataclasses.dataclass(frozen=True)
class Event:
  """One sentence's content, independent of language."""
  subject: int
  verb: int
  object: int
  subject_adjective: Optional[int] = None
  object_adjective: Optional[int] = None
  place: Optional[int] = None
  present: bool = False


@dataclasses.dataclass(frozen=True)
class Headline:
  """A summary's content: who did what to what (present tense)."""
  subject: int
  verb: int
  object: int


Document = tuple[Event, ...]


def headline(document: Document) -> Headline:
  """The task: the first (lead) event, no adjectives or place."""
  first = document[0]
  return Headline(first.subject, first.verb, first.object)


def _arrange(language: languages.Language, s: list[str], v: list[str],
             o: list[str], rest: list[str]) -> list[str]:
  order = language.spec.order
  if order == "SVO":
    return s + v + o + rest
  if order == "SOV":
    return s + o + rest + v
  return v + s + o + rest  # VSO


def _noun_phrase(language: languages.Language, category: str, noun: int,
                 adjective: Optional[int]) -> list[str]:
  words = [language.word(category, noun)]
  if adjective is not None:
    adj = language.word("adjective", adjective)
    after = language.spec.adjective_after_noun
    words = words + [adj] if after else [adj] + words
  return words


def render_sentence(event: Event, language: languages.Language) -> str:
  s = _noun_phrase(language, "entity", event.subject, event.subject_adjective)
  o = _noun_phrase(language, "object", event.object, event.object_adjective)
  v = [language.verb_form(event.verb, event.present)]
  rest = []
  if event.place is not None:
    place = language.word("place", event.place)
    adp = language.surface(language.adposition)
    rest = [place, adp] if language.spec.postpositions else [adp, place]
  return " ".join(_arrange(language, s, v, o, rest)) + "."


def render_document(document: Document, language: languages.Language) -> str:
  return " ".join(render_sentence(e, language) for e in document)


def render_headline(h: Headline, language: languages.Language) -> str:
  return " ".join(_arrange(
      language, [language.word("entity", h.subject)],
      [language.verb_form(h.verb, present=True)],
      [language.word("object", h.object)], [])) + "."


def render_title(document: Document, language: languages.Language) -> str:
  first = document[0]
  return (f"{language.word('entity', first.subject)} "
          f"{language.word('object', first.object)}")


def split_words(text: str) -> list[str]:
  """Whitespace tokens without surrounding punctuation; empty ones dropped."""
  words = (w.strip(_PUNCTUATION) for w in text.split())
  return [w for w in words if w]


def _sentences(text: str) -> list[str]:
  parts = [p.strip() for p in text.split(".")]
  return [p for p in parts if p]


def parse_sentence(text: str, language: languages.Language) -> Event:
  """The content of one rendered sentence; ValueError if it is not one."""
  meanings = language.token_meanings()
  slots: dict[str, Optional[int]] = {}
  present = None
  pending_adjective = None
  last_noun = None
  for word in split_words(text):
    if word not in meanings:
      raise ValueError(f"{language.code}: {word!r} is not a word of the "
                       f"language (in {text!r})")
    meaning = meanings[word]
    kind = meaning[0]
    if kind == "adjective":
      if language.spec.adjective_after_noun:
        if last_noun is None or f"{last_noun}_adjective" in slots:
          raise ValueError(f"{language.code}: stray adjective in {text!r}")
        slots[f"{last_noun}_adjective"] = meaning[1]
      else:
        pending_adjective = meaning[1]
      continue
    if kind in ("entity", "object"):
      slot = "subject" if kind == "entity" else "object"
      if slot in slots:
        raise ValueError(f"{language.code}: two {kind}s in {text!r}")
      slots[slot] = meaning[1]
      if pending_adjective is not None:
        slots[f"{slot}_adjective"] = pending_adjective
        pending_adjective = None
      last_noun = slot
    elif kind == "verb":
      if "verb" in slots:
        raise ValueError(f"{language.code}: two verbs in {text!r}")
      slots["verb"], present = meaning[1], meaning[2]
    elif kind == "place":
      slots["place"] = meaning[1]
  missing = [k for k in ("subject", "verb", "object") if k not in slots]
  if missing or pending_adjective is not None:
    raise ValueError(f"{language.code}: {text!r} lacks {missing or 'a noun'}")
  event = Event(present=bool(present), **slots)
  if render_sentence(event, language) != text.strip():
    raise ValueError(f"{language.code}: {text!r} is not in the language's "
                     f"word order")
  return event


def parse_document(text: str, language: languages.Language) -> Document:
  return tuple(parse_sentence(s + ".", language) for s in _sentences(text))


def parse_headline(text: str, language: languages.Language) -> Headline:
  """The content of a rendered summary; ValueError if it is not one."""
  event = parse_sentence(text, language)
  h = Headline(event.subject, event.verb, event.object)
  if render_headline(h, language) != text.strip():
    raise ValueError(f"{language.code}: {text!r} is not a headline (present "
                     f"tense, no adjectives or place)")
  return h

