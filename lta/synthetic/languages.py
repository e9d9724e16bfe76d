"""Synthetic languages: lexicons, morphology, scripts and their distances.

A language is a set of pseudo-words for the shared concepts (built from its
own syllable inventory, partly borrowed from relatives), an adposition, two
verb suffixes (past, present), a word order and a script. Words are made in
a Latin romanization and transliterated letter by letter, so relatives in
different scripts share words underneath but not on the surface.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Mapping, Sequence

import numpy as np

from lta.languages import related as relatedness

ORDERS = ("SVO", "SOV", "VSO")
ROLES = ("source", "target")
CATEGORIES = ("entity", "verb", "object", "adjective", "place")

# XL-Sum release names of the paper's 22 languages (tasks/xlsum_builder.py
# has all 45; a test checks these agree). Codes also need an ISO 639-3 code
# in lta.languages.related, which these 22 have.
XLSUM_RELEASE_NAMES = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fa": "persian",
    "gu": "gujarati", "id": "indonesian", "ja": "japanese", "ko": "korean",
    "mr": "marathi", "ne": "nepali", "pt": "portuguese", "ru": "russian",
    "si": "sinhala", "so": "somali", "sw": "swahili", "te": "telugu",
    "th": "thai", "tr": "turkish", "uk": "ukrainian", "vi": "vietnamese",
    "yo": "yoruba", "zh": "chinese_simplified",
}

# Words are built from these phonemes (written in Latin: the romanization),
# then transliterated letter by letter into the language's script.
_CONSONANTS = "ptkbdgmnslrvzfhj"
_VOWELS = "aeiou"
_SCRIPT_LETTERS = {
    "latin": _CONSONANTS + _VOWELS,
    "cyrillic": "пткбдгмнслрвзфхй" + "аеиоу",
    "greek": "πτκβδγμνσλρθζφχξ" + "αειου",
    "armenian": "պտկբդգմնսլրվզֆհյ" + "աեիօը",
}
SCRIPTS = tuple(_SCRIPT_LETTERS)
_TRANSLITERATION = {
    script: str.maketrans(_SCRIPT_LETTERS["latin"], letters)
    for script, letters in _SCRIPT_LETTERS.items()
}

# Relatedness thresholds for the synthetic table (see `related_sources`).
SYNTACTIC_MAX = 0.7
LEXICAL_MAX = 0.9


@dataclasses.dataclass(frozen=True)
class LanguageSpec:
  """How one synthetic language looks.

  Attributes:
    code: an XL-Sum code the language stands in for (files and task names).
    role: 'source' (labelled training data) or 'target' (evaluation only).
    script: one of SCRIPTS.
    order: constituent order, one of ORDERS.
    adjective_after_noun: 'box red' rather than 'red box'.
    postpositions: 'house in' rather than 'in house'.
    borrows: (relative code, fraction) pairs: that fraction of the content
      words keeps the relative's (romanized) form. Relatives come earlier in
      the config. Function morphemes are never borrowed.
  """
  code: str
  role: str
  script: str = "latin"
  order: str = "SVO"
  adjective_after_noun: bool = False
  postpositions: bool = False
  borrows: tuple[tuple[str, float], ...] = ()

  def __post_init__(self):
    where = f"LanguageSpec {self.code!r}"
    if self.code not in XLSUM_RELEASE_NAMES:
      raise ValueError(f"{where}: code must be one of "
                       f"{sorted(XLSUM_RELEASE_NAMES)}")
    if self.role not in ROLES:
      raise ValueError(f"{where}: role={self.role!r}, expected one of {ROLES}")
    if self.script not in SCRIPTS:
      raise ValueError(f"{where}: script={self.script!r}, expected one of "
                       f"{SCRIPTS}")
    if self.order not in ORDERS:
      raise ValueError(f"{where}: order={self.order!r}, expected one of "
                       f"{ORDERS}")
    total = 0.0
    for relative, fraction in self.borrows:
      if relative == self.code or not 0.0 < fraction <= 1.0:
        raise ValueError(f"{where}: bad borrowing ({relative!r}, {fraction})")
      total += fraction
    if total > 1.0:
      raise ValueError(f"{where}: borrowed fractions sum to {total} > 1")

  @property
  def release_name(self) -> str:
    return XLSUM_RELEASE_NAMES[self.code]


# Sources with labels, and zero-shot targets each related to two or three of
# them, after the paper's Table 5 (pt: en, ru; uk: ru, en; vi: id; fa: tr, ar).
DEFAULT_LANGUAGES = (
    LanguageSpec("en", "source", "latin", "SVO"),
    LanguageSpec("ru", "source", "cyrillic", "SVO"),
    LanguageSpec("id", "source", "latin", "SVO", adjective_after_noun=True),
    LanguageSpec("tr", "source", "latin", "SOV", postpositions=True),
    LanguageSpec("ar", "source", "greek", "VSO", adjective_after_noun=True),
    LanguageSpec("pt", "target", "latin", "SVO", adjective_after_noun=True,
                 borrows=(("en", 0.5), ("ru", 0.25))),
    LanguageSpec("uk", "target", "cyrillic", "SVO",
                 borrows=(("ru", 0.5), ("en", 0.25))),
    LanguageSpec("vi", "target", "latin", "SVO", adjective_after_noun=True,
                 borrows=(("id", 0.6),)),
    LanguageSpec("fa", "target", "armenian", "SOV", adjective_after_noun=True,
                 borrows=(("tr", 0.5), ("ar", 0.25))),
)


def seeded_rng(seed: int, *labels: str) -> np.random.Generator:
  """A generator for one named stream; crc32, not hash(), names streams."""
  entropy = [seed] + [zlib.crc32(label.encode("utf-8")) for label in labels]
  return np.random.default_rng(np.random.SeedSequence(entropy))


def concept_keys(counts: Mapping[str, int]) -> list[str]:
  """Content concepts, e.g. 'entity:3', in a fixed order.

  Args:
    counts: number of concepts per category (all of CATEGORIES).
  """
  missing = [c for c in CATEGORIES if c not in counts]
  if missing:
    raise ValueError(f"concept counts lack {missing}")
  return [f"{c}:{i}" for c in CATEGORIES for i in range(counts[c])]


@dataclasses.dataclass(frozen=True)
class Language:
  """A language's lexicon (romanized) and morphology; surface on demand."""
  spec: LanguageSpec
  roman: Mapping[str, str]  # Concept key -> romanized word (verbs: stems).
  adposition: str
  past_suffix: str
  present_suffix: str

  @property
  def code(self) -> str:
    return self.spec.code

  def surface(self, roman: str) -> str:
    return roman.translate(_TRANSLITERATION[self.spec.script])

  def word(self, category: str, index: int) -> str:
    return self.surface(self.roman[f"{category}:{index}"])

  def verb_form(self, verb: int, present: bool) -> str:
    suffix = self.present_suffix if present else self.past_suffix
    return self.surface(self.roman[f"verb:{verb}"] + suffix)

  def token_meanings(self) -> dict[str, tuple]:
    """Every surface token -> ('entity', i), ('verb', i, present), ..."""
    out = {self.surface(self.adposition): ("adposition",)}
    for key in self.roman:
      category, index = key.split(":")
      if category == "verb":
        for present in (False, True):
          out[self.verb_form(int(index), present)] = ("verb", int(index),
                                                      present)
      else:
        out[self.surface(self.roman[key])] = (category, int(index))
    return out

  def to_json(self) -> dict:
    return {
        "spec": dataclasses.asdict(self.spec),
        "release_name": self.spec.release_name,
        "adposition": self.adposition,
        "past_suffix": self.past_suffix,
        "present_suffix": self.present_suffix,
        "roman": dict(self.roman),
        "surface": {t: list(m) for t, m in self.token_meanings().items()},
    }


class _Phonology:
  """A language's syllable inventory; draws words not used anywhere yet."""

  def __init__(self, rng: np.random.Generator):
    self.rng = rng
    consonants = list(_CONSONANTS)
    self.consonants = sorted(rng.choice(consonants, int(rng.integers(9, 13)),
                                        replace=False))
    self.vowels = sorted(rng.choice(list(_VOWELS), int(rng.integers(3, 6)),
                                    replace=False))
    self.coda = float(rng.uniform(0.0, 0.4))

  def syllable(self) -> str:
    s = self.rng.choice(self.consonants) + self.rng.choice(self.vowels)
    if self.rng.random() < self.coda:
      s += self.rng.choice(self.consonants)
    return str(s)

  def fresh(self, used: set[str], syllables: tuple[int, int],
            endings: Sequence[str] = ("",), onset: bool = True) -> str:
    """A new word; with every ending appended it collides with nothing."""
    for _ in range(10_000):
      n = int(self.rng.integers(syllables[0], syllables[1] + 1))
      word = "".join(self.syllable() for _ in range(n))
      if not onset:  # Suffixes start with a vowel: stem + suffix reads well.
        word = str(self.rng.choice(self.vowels)) + word[1:]
      forms = [word + e for e in endings]
      if len(set(forms)) == len(forms) and not used.intersection(forms):
        return word
    raise RuntimeError("No fresh word found; enlarge the phonology")


def build_languages(specs: Sequence[LanguageSpec], keys: Sequence[str],
                    seed: int) -> dict[str, Language]:
  """Lexicons and morphology of every language, in the order given.

  All surface tokens are unique across languages except content words that
  a language borrowed from a relative in the same script, so a token
  identifies its language(s). Function morphemes (adposition, verb
  suffixes) are never shared: every sentence has a token unique to its
  language.
  """
  languages: dict[str, Language] = {}
  used: set[str] = set()  # Romanized tokens taken (all forms).
  used_suffixes: set[str] = set()
  for spec in specs:
    rng = seeded_rng(seed, "lexicon", spec.code)
    phonology = _Phonology(rng)
    adposition = phonology.fresh(used, (1, 1))
    used.add(adposition)
    # Suffixes are unique across languages too, so a borrowed verb stem
    # still gives forms of its own.
    past = phonology.fresh(used_suffixes, (1, 1), onset=False)
    used_suffixes.add(past)
    present = phonology.fresh(used_suffixes, (1, 1), onset=False)
    used_suffixes.add(present)
    suffixes = (past, present)

    # Which concepts come from which relative: consecutive runs of one
    # seeded permutation, so fractions are exact.
    origin: dict[str, str] = {}
    order = rng.permutation(len(keys))
    start = 0
    for relative, fraction in spec.borrows:
      count = int(round(fraction * len(keys)))
      for i in order[start:start + count]:
        origin[keys[i]] = relative
      start += count

    roman = {}
    for key in keys:
      endings = suffixes if key.startswith("verb:") else ("",)
      relative = origin.get(key)
      if relative is not None:
        word = languages[relative].roman[key]
        if key.startswith("verb:"):
          forms = [word + e for e in endings]
          if all(f not in used for f in forms):
            roman[key] = word
            used.update(forms)
            continue
          # Stem + our suffix is someone's token: coin a new verb instead.
        else:
          roman[key] = word  # Already taken, by the relative: shared.
          continue
      word = phonology.fresh(used, (2, 3), endings)
      roman[key] = word
      used.update(word + e for e in endings)
    languages[spec.code] = Language(spec, roman, adposition, past, present)
  return languages


# ----------------------------------------------------------------------------
# Relatedness.
# ----------------------------------------------------------------------------


def _syntax_features(spec: LanguageSpec) -> tuple[int, ...]:
  order = spec.order
  return (int(order.index("S") < order.index("V")),
          int(order.index("V") < order.index("O")),
          int(order.index("S") < order.index("O")),
          int(spec.adjective_after_noun), int(spec.postpositions))


def syntactic_distance(a: LanguageSpec, b: LanguageSpec) -> float:
  """Share of the five binary word-order features that differ."""
  fa, fb = _syntax_features(a), _syntax_features(b)
  return sum(x != y for x, y in zip(fa, fb)) / len(fa)


def lexical_distance(a: Language, b: Language) -> float:
  """1 - share of content concepts with the same romanized word."""
  same = sum(a.roman[k] == b.roman[k] for k in a.roman)
  return 1.0 - same / len(a.roman)


def distance_pairs(languages: Mapping[str, Language]
                   ) -> dict[tuple[str, str], tuple[float, float]]:
  """{(a, b): (syntactic, lexical)} for a < b."""
  codes = sorted(languages)
  return {(a, b): (syntactic_distance(languages[a].spec, languages[b].spec),
                   lexical_distance(languages[a], languages[b]))
          for i, a in enumerate(codes) for b in codes[i + 1:]}


def related_sources(languages: Mapping[str, Language], target: str,
                    syntactic_max: float = SYNTACTIC_MAX,
                    lexical_max: float = LEXICAL_MAX) -> list[str]:
  """Source languages under both thresholds, nearest (syntactic, lexical) first.

  The same rule as `lta.languages.related.select_related`, with the lexical
  distance in place of URIEL's geographic one.
  """
  pairs = distance_pairs(languages)
  found = []
  for code, language in languages.items():
    if language.spec.role != "source" or code == target:
      continue
    syn, lex = pairs[tuple(sorted((code, target)))]
    if syn < syntactic_max and lex < lexical_max:
      found.append((syn, lex, code))
  return [code for _, _, code in sorted(found)]


def write_relatedness_tsv(path: str, languages: Mapping[str, Language]
                          ) -> None:
  """`lta.languages.related.load_table` format, geographic := lexical distance."""
  rows = sorted(
      (tuple(sorted((relatedness.uriel_code(a), relatedness.uriel_code(b)))),
       d) for (a, b), d in distance_pairs(languages).items())
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write("# Synthetic world distances; the 'geographic' column holds the "
            "lexical distance.\n")
    f.write("code_a\tcode_b\tsyntactic\tgeographic\n")
    for (a, b), (syn, lex) in rows:
      f.write(f"{a}\t{b}\t{syn:.4f}\t{lex:.4f}\n")

