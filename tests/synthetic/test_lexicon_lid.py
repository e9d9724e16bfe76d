"""Lexicon language identification on the synthetic world."""

import gzip
import json

import pytest

from lta.eval import langid
from lta.eval import metrics
from lta.synthetic import grammar
from lta.synthetic import lexicon_lid
from lta.synthetic import world


def _fidelity(predictions, lang, world_like):
  return langid.language_fidelity(predictions, lang,
                                  lexicon_lid.LexiconIndex(world_like))


def _texts(info, code) -> dict[str, list[str]]:
  out = {"text": [], "summary": [], "mc4": []}
  for split in world.XLSUM_SPLITS:
    with open(info.xlsum_path(code, split), encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        out["text"].append(record["text"])
        out["summary"].append(record["summary"])
  for split in world.MC4_SPLITS:
    with gzip.open(info.mc4_path(code, split), "rt", encoding="utf-8") as f:
      out["mc4"] += [json.loads(line)["text"] for line in f]
  return out


def test_every_language_is_recognised_and_no_other(tiny_world):
  texts = {c: _texts(tiny_world, c) for c in tiny_world.languages}
  for code in tiny_world.languages:
    for kind, items in texts[code].items():
      assert _fidelity(items, code, tiny_world) == 100.0, (code, kind)
      for other in tiny_world.languages:
        if other != code:
          assert _fidelity(items, other, tiny_world) == 0.0, (
              code, other, kind)


def test_source_summaries_are_not_target_even_with_shared_words(tiny_world):
  en, pt = tiny_world.languages["en"], tiny_world.languages["pt"]
  shared = [i for i in range(tiny_world.config.num_entities)
            if en.word("entity", i) == pt.word("entity", i)]
  shared_objects = [i for i in range(tiny_world.config.num_objects)
                    if en.word("object", i) == pt.word("object", i)]
  assert shared and shared_objects
  h = grammar.Headline(shared[0], 0, shared_objects[0])
  in_en, in_pt = grammar.render_headline(h, en), grammar.render_headline(h, pt)
  assert in_en.split()[0] == in_pt.split()[0]  # Same subject word.
  shares = lexicon_lid.language_shares(in_en, tiny_world)
  assert shares["en"] == 1.0 and shares["pt"] == pytest.approx(2 / 3)
  assert lexicon_lid.identify(in_en, tiny_world) == "en"
  assert lexicon_lid.identify(in_pt, tiny_world) == "pt"
  assert _fidelity([in_en, in_pt], "pt", tiny_world) == 50.0


def test_ties_unknown_and_empty_text_are_in_no_language(tiny_world):
  en, pt = tiny_world.languages["en"], tiny_world.languages["pt"]
  en_only = grammar.render_headline(grammar.Headline(0, 0, 0), en).split()[1]
  pt_only = grammar.render_headline(grammar.Headline(0, 0, 0), pt).split()[1]
  index = lexicon_lid.LexiconIndex(tiny_world)
  assert index.language_of(f"{en_only} {pt_only}") is None  # A tie.
  assert index.language_of("zzz qqq.") is None
  assert index.shares("") == dict.fromkeys(tiny_world.languages, 0.0)
  matches = langid.language_matches(["", "zzz", en_only], "en", index)
  assert matches.tolist() == [False, False, True]


def test_world_from_path_and_errors(tiny_world):
  summary = grammar.render_headline(grammar.Headline(1, 1, 1),
                                  tiny_world.languages["uk"])
  assert _fidelity([summary], "uk", tiny_world.out_dir) == 100.0
  with pytest.raises(ValueError, match="no predictions"):
    _fidelity([], "uk", tiny_world)
  with pytest.raises(ValueError, match="'zh' is not a language"):
    _fidelity([summary], "zh", tiny_world)


def test_the_lexicon_is_a_language_identifier(tiny_world):
  """The one fidelity protocol: labels, batch identification, gaps."""
  index = lexicon_lid.LexiconIndex(tiny_world)
  summary = grammar.render_headline(grammar.Headline(1, 1, 1),
                                    tiny_world.languages["uk"])
  assert index.identify([summary, ""]) == ["uk", None]
  assert langid.fidelity_gap("uk", index) is None
  assert langid.fidelity_gap("zh", index) == (
      "n/a: the identifier (synthetic-world lexicon) has no 'zh'")


def test_seqio_metric(tiny_world):
  metric = metrics.make_language_fidelity_metric(
      "fa", lexicon_lid.LexiconIndex(tiny_world.out_dir))
  fa = tiny_world.languages["fa"]
  predictions = [grammar.render_headline(grammar.Headline(i, i, i), fa)
                 for i in range(3)] + [""]
  assert metric(predictions, predictions) == {"language_fidelity": 75.0}


def test_wrong_language_rate_counts_other_languages_not_blanks(tiny_world):
  index = lexicon_lid.LexiconIndex(tiny_world)
  en = _texts(tiny_world, "en")["summary"][:3]
  pt = _texts(tiny_world, "pt")["summary"][:4]
  # 3 in English, 4 in Portuguese, 1 blank: 3 of 8 in another language.
  predictions = en + pt + [""]
  assert langid.wrong_language_rate(predictions, "pt", index) == 37.5
  assert _fidelity(predictions, "pt", tiny_world) == 50.0
  assert langid.wrong_language_rate(pt, "pt", index) == 0.0
  with pytest.raises(langid.UndetectableLanguageError):
    langid.wrong_language_rate(pt, "xx", index)
