"""Target-language fidelity on sentences of known language."""

import collections

import numpy as np
import pytest

from lta.eval import langid
from lta.eval import metrics
from metrics_fixtures import read_jsonl

SENTENCES = read_jsonl("sentences.jsonl")
BY_LANG = collections.defaultdict(list)
for row in SENTENCES:
  BY_LANG[row["lang"]].append(row["text"])


@pytest.mark.parametrize("lang", sorted(BY_LANG))
def test_every_sentence_is_detected_in_its_language(lang):
  assert langid.detect_languages(BY_LANG[lang]) == [lang] * len(BY_LANG[lang])
  assert langid.language_fidelity(BY_LANG[lang], lang) == 100.0


def test_fidelity_is_the_share_in_the_target_language():
  # 2 Marathi, 1 Hindi (same script), 1 English, 1 empty, 1 digits only.
  preds = BY_LANG["mr"][:2] + BY_LANG["hi"][:1] + BY_LANG["en"][:1] + [
      "", "2023 !"]
  assert langid.language_fidelity(preds, "mr") == pytest.approx(100 * 2 / 6)
  np.testing.assert_array_equal(
      langid.language_matches(preds, "mr"),
      [True, True, False, False, False, False])


@pytest.mark.parametrize("name,code", [
    ("chinese_simplified", "zh"), ("zh-Hans", "zh"), ("ZH_cn", "zh"),
    ("persian", "fa"), ("fa", "fa"), ("iw", "he"), ("bengali", "bn"),
    ("kiswahili", "sw"), ("serbian_latin", "sr"), ("pt-BR", "pt"),
    ("yoruba", "yo"), ("somali", "so"),
])
def test_language_codes_map_to_lid176_labels(name, code):
  assert langid.to_lid_code(name) == code


def test_aliases_work_in_fidelity():
  assert langid.language_fidelity(BY_LANG["zh"], "chinese_simplified") == 100
  assert langid.language_fidelity(BY_LANG["fa"], "persian") == 100
  assert langid.language_fidelity(BY_LANG["ja"], "zh") == 0


@pytest.mark.parametrize("lang", ["hausa", "ig", "xx", "klingon"])
def test_undetectable_languages_are_rejected(lang):
  with pytest.raises(ValueError, match=repr(lang)):
    langid.language_fidelity(["text"], lang)
  with pytest.raises(ValueError):
    metrics.make_language_fidelity_metric(lang)


def test_blank_text_has_no_language_and_newlines_are_fine():
  assert langid.detect_languages(["", "   ", "12 34", "Hello\nworld, again"]
                                 ) == [None, None, None, "en"]
  with pytest.raises(TypeError, match="text 1"):
    langid.detect_languages(["ok", 3])
  with pytest.raises(ValueError, match="no predictions"):
    langid.language_fidelity([], "en")


def test_seqio_metric_fn_ignores_targets():
  fn = metrics.make_language_fidelity_metric("ru")
  preds = BY_LANG["ru"] + BY_LANG["uk"]
  got = fn(["unused"] * len(preds), preds)
  assert got == {"language_fidelity": pytest.approx(
      100 * len(BY_LANG["ru"]) / len(preds))}


def test_bundled_model_is_small_and_offline():
  import os
  path = langid.default_model_path()
  assert path.endswith("lid.176.ftz") and os.path.getsize(path) < 2 ** 20
  with pytest.raises(FileNotFoundError, match="missing.bin"):
    langid.detect_languages(["x"], model_path="/nonexistent/missing.bin")
