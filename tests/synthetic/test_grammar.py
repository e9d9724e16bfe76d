"""Rendering and parsing the shared content in each language."""

import pytest

from lta.synthetic import grammar


def test_summary_surface_follows_each_languages_grammar(tiny_world):
  h = grammar.Headline(subject=1, verb=2, object=3)
  for code, language in tiny_world.languages.items():
    s = language.word("entity", 1)
    v = language.verb_form(2, present=True)
    o = language.word("object", 3)
    want = {"SVO": [s, v, o], "SOV": [s, o, v], "VSO": [v, s, o]}
    assert grammar.render_headline(h, language) == " ".join(
        want[language.spec.order]) + "."
  event = grammar.Event(subject=0, verb=0, object=0, object_adjective=1,
                        place=2)
  en = tiny_world.languages["en"]
  assert grammar.render_sentence(event, en) == (
      f"{en.word('entity', 0)} {en.verb_form(0, False)} "
      f"{en.word('adjective', 1)} {en.word('object', 0)} "
      f"{en.surface(en.adposition)} {en.word('place', 2)}.")
  tr = tiny_world.languages["tr"]  # SOV, postpositions.
  assert grammar.render_sentence(event, tr) == (
      f"{tr.word('entity', 0)} {tr.word('adjective', 1)} "
      f"{tr.word('object', 0)} {tr.word('place', 2)} "
      f"{tr.surface(tr.adposition)} {tr.verb_form(0, False)}.")


def test_parse_rejects_foreign_and_misordered_text(tiny_world):
  en, pt = tiny_world.languages["en"], tiny_world.languages["pt"]
  h = grammar.Headline(0, 0, 0)
  with pytest.raises(ValueError, match="not a word of the language"):
    grammar.parse_headline(grammar.render_headline(h, pt), en)
  s, v, o = grammar.render_headline(h, en).rstrip(".").split()
  with pytest.raises(ValueError, match="word order"):
    grammar.parse_headline(f"{s} {o} {v}.", en)
  past = grammar.render_sentence(grammar.Event(0, 0, 0), en)
  with pytest.raises(ValueError, match="not a headline"):
    grammar.parse_headline(past, en)