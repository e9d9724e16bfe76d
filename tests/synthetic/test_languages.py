"""Synthetic languages: scripts, lexicons, borrowing and distances."""

import json
import pathlib
import re

import pytest

from lta.languages import related as relatedness
from lta.synthetic import languages


def test_scripts(tiny_world):
  pattern = {"latin": r"[a-z]", "cyrillic": r"[\u0400-\u04ff]",
             "greek": r"[\u0370-\u03ff]", "armenian": r"[\u0530-\u058f]"}
  for code, language in tiny_world.languages.items():
    text = pathlib.Path(tiny_world.xlsum_path(code, "val")).read_text("utf-8")
    letters = "".join(json.loads(l)["text"] for l in text.splitlines())
    letters = re.sub(r"[ .]", "", letters)
    assert re.fullmatch(f"(?:{pattern[language.spec.script]})+", letters), code


def test_tokens_are_shared_only_by_borrowing_in_one_script(tiny_world):
  langs = tiny_world.languages
  function = {}
  for code, language in langs.items():
    meanings = language.token_meanings()
    function[code] = {t for t, m in meanings.items()
                      if m[0] in ("adposition", "verb")}
  codes = list(langs)
  for i, a in enumerate(codes):
    for b in codes[i + 1:]:
      shared = set(langs[a].token_meanings()) & set(langs[b].token_meanings())
      if langs[a].spec.script != langs[b].spec.script:
        assert not shared, (a, b)
      assert not shared & (function[a] | function[b]), (a, b)
      for token in shared:  # Same word, same meaning.
        assert langs[a].token_meanings()[token] == (
            langs[b].token_meanings()[token])
  # pt borrowed about half its content words from en.
  shared_en = sum(langs["pt"].roman[k] == langs["en"].roman[k]
                  for k in langs["pt"].roman)
  assert shared_en >= 0.4 * len(langs["pt"].roman)


def test_relatedness_table_and_related_sources(tiny_world):
  want = {"pt": ["en", "ru"], "uk": ["ru", "en"], "vi": ["id"],
          "fa": ["tr", "ar"]}
  meta = json.loads(pathlib.Path(tiny_world.out_dir, "world.json").read_text())
  assert meta["related_sources"]["by_target"] == want
  table = relatedness.load_table(tiny_world.relatedness_path)
  for target, sources in want.items():
    assert tiny_world.related_sources(target) == sources
    chosen = relatedness.select_related(
        target, tiny_world.sources, table, relatedness.SelectionRule(
            syntactic_max=languages.SYNTACTIC_MAX,
            geographic_max=languages.LEXICAL_MAX, geographic_decimals=None,
            macro=False))
    assert [r.language for r in chosen] == sources
  sources = tiny_world.sources
  for i, a in enumerate(sources):  # Sources borrow nothing from each other.
    for b in sources[i + 1:]:
      assert table.geographic(relatedness.uriel_code(a),
                              relatedness.uriel_code(b)) == 1.0
  en, tr = tiny_world.languages["en"].spec, tiny_world.languages["tr"].spec
  assert languages.syntactic_distance(en, en) == 0.0
  assert languages.syntactic_distance(en, tr) == pytest.approx(0.4)


def test_release_names_agree_with_the_xlsum_builder():
  from lta_tasks import mc4  # pylint: disable=g-import-not-at-top
  from lta_tasks import xlsum_builder  # pylint: disable=g-import-not-at-top

  for code, name in languages.XLSUM_RELEASE_NAMES.items():
    assert xlsum_builder.XLSUM_LANGUAGES[code] == name
    assert code in mc4.MC4_LANGS
    relatedness.uriel_code(code)  # Raises for a code without ISO 639-3.



def test_bad_language_specs_are_named():
  with pytest.raises(ValueError, match="'xx'.*code must be one of"):
    languages.LanguageSpec("xx", "source")
  with pytest.raises(ValueError, match="order='OVS'"):
    languages.LanguageSpec("en", "source", order="OVS")
  with pytest.raises(ValueError, match="sum to"):
    languages.LanguageSpec("pt", "target", borrows=(("en", 0.7), ("ru", 0.5)))