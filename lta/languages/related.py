"""Related source languages from URIEL distances (the paper's Table 5).

For a target T the paper averages the task vectors of the sources S with
syntactic distance < 0.7 and geographic distance < 0.3 (section 5.4),
ordered here by syntactic distance, then geographic. `SelectionRule` holds
the thresholds and the two choices the paper leaves open (language codes,
rounding); its defaults come closest to Table 5 (docs/composition.md).

Distances come from one of three sources, all keyed by ISO 639-3 codes:

* `load_table()`: the small committed table `lta/languages/uriel_distances.tsv`
  (the paper's 22 XLSum languages, their macrolanguage codes and frr, dan,
  deu), made by `lta/languages/make_uriel_tables.py`. No lang2vec needed.
* `Lang2VecUriel`: recomputed from lang2vec 1.1.2's feature files.
  Geographic: great-circle distance / antipodal distance (= angle / pi)
  between coordinates trilaterated from the 'geo' features (see
  `lta.languages.geo`). Syntactic: `syntactic_angle` between the languages'
  observed syntax features (the union of WALS, SSWL and Ethnologue, as
  lang2vec's 'syntax_wals|syntax_sswl|syntax_ethnologue'). lang2vec's own
  precomputed syntactic distances are not reproducible from its features
  (antonisa/lang2vec#17); docs/composition.md says how close this comes.
* `Distances2Zip`: a user-supplied `distances2.zip` from the lang2vec GitHub
  version (scipy sparse upper-triangular matrices indexed by the order of
  `distances_languages.txt`). Its geographic values are rounded to one
  decimal and its syntactic values to two.

Codes: by default (`SelectionRule.macro`) ar, zh, sw, fa, ne are the
macrolanguages ara, zho, swa, fas, nep, as lang2vec's letter_codes.json maps
them; `macro=False` uses the individual languages XLSum's text is (Modern
Standard Arabic arb, Mandarin cmn, Kiswahili swh, Iranian Persian pes,
Nepali npi). In distances2.zip 'ara' has no coordinates and sits at
geographic distance 1.0 from every language (antonisa/lang2vec#15); the
recomputed coordinates place it in Egypt.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import io
import os
import zipfile
from typing import Mapping, Optional, Protocol, Sequence, TextIO, Union

import numpy as np

from lta.errors import ConfigError

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
DISTANCES_TSV = os.path.join(DATA_DIR, "uriel_distances.tsv")
RELATED_TSV = os.path.join(DATA_DIR, "related_languages_xlsum.tsv")

# The paper's XLSum languages (section 3.1), for lta_tasks too: task vectors
# are trained on the seen ones; the unseen ones are the zero-shot targets,
# in the paper's order (Table 5's columns). The seen ones are alphabetical,
# the order `lta prepare-data --xlsum_languages=seen` prepares and lists.
XLSUM_SEEN = ("ar", "bn", "en", "id", "ja", "ko", "ru", "sw", "te", "th",
              "tr")
XLSUM_UNSEEN = ("mr", "gu", "zh", "ne", "pt", "si", "so", "vi", "yo", "uk",
                "fa")
SYNTACTIC_MAX = 0.7
GEOGRAPHIC_MAX = 0.3
# lang2vec's syntax_wals|syntax_sswl|syntax_ethnologue: observed features.
SYNTAX_SOURCES = ("WALS", "SSWL", "ETHNO")


@dataclasses.dataclass(frozen=True)
class SelectionRule:
  """Which sources count as related: both distances under their threshold.

  geographic_decimals: round geographic distances first, as lang2vec's
    distances2.zip stores them (one decimal: "< 0.3" keeps values < 0.25);
    None compares them unrounded.
  macro: macrolanguage codes for ar, zh, sw, fa, ne (see `uriel_code`).
  """
  syntactic_max: float = SYNTACTIC_MAX
  geographic_max: float = GEOGRAPHIC_MAX
  geographic_decimals: Optional[int] = 1
  macro: bool = True

  def related(self, syntactic: float, geographic: float) -> bool:
    if self.geographic_decimals is not None:
      geographic = round(geographic, self.geographic_decimals)
    return syntactic < self.syntactic_max and geographic < self.geographic_max

# Table 5 of the paper: sources selected for each unseen target, in order.
PAPER_TABLE5 = {
    "mr": ("bn", "te", "tr"),
    "gu": ("bn", "te"),
    "zh": ("en", "ko", "ja", "id", "th"),
    "ne": ("te", "ja", "tr", "ko", "ru", "bn"),
    "pt": ("en", "ru", "ar"),
    "si": ("te", "bn"),
    "so": ("ar", "sw", "en"),
    "vi": ("id", "th"),
    "yo": ("en", "ar"),
    "uk": ("ru", "en", "sw"),
    "fa": ("tr", "en", "ar"),
}

# ISO 639-1 -> ISO 639-3 individual language (what XLSum and mC4 hold).
ISO639_3 = {
    "ar": "arb", "bn": "ben", "en": "eng", "ja": "jpn", "ko": "kor",
    "id": "ind", "sw": "swh", "ru": "rus", "te": "tel", "th": "tha",
    "tr": "tur", "mr": "mar", "gu": "guj", "zh": "cmn", "ne": "npi",
    "pt": "por", "si": "sin", "so": "som", "vi": "vie", "yo": "yor",
    "uk": "ukr", "fa": "pes", "da": "dan", "de": "deu",
}
# lang2vec's letter_codes.json maps these to the macrolanguage instead.
MACROLANGUAGE = {"ar": "ara", "zh": "zho", "sw": "swa", "fa": "fas",
                 "ne": "nep"}


def uriel_code(lang: str, macro: bool = False) -> str:
  """ISO 639-3 code for an XLSum language code (3-letter codes pass)."""
  if len(lang) == 3:
    return lang
  if macro and lang in MACROLANGUAGE:
    return MACROLANGUAGE[lang]
  if lang not in ISO639_3:
    raise ConfigError(f"No ISO 639-3 code known for language {lang!r}; pass "
                      "a 3-letter code")
  return ISO639_3[lang]


class DistanceSource(Protocol):

  def syntactic(self, a: str, b: str) -> float:
    ...

  def geographic(self, a: str, b: str) -> float:
    ...


@dataclasses.dataclass(frozen=True)
class DistanceTable:
  """Symmetric syntactic and geographic distances between ISO 639-3 codes."""
  pairs: Mapping[tuple[str, str], tuple[float, float]]
  source: str = "table"

  def _get(self, a: str, b: str) -> tuple[float, float]:
    if a == b:
      return (0.0, 0.0)
    key = (a, b) if a < b else (b, a)
    if key not in self.pairs:
      raise KeyError(f"{self.source} has no distances between {a!r} and "
                     f"{b!r}")
    return self.pairs[key]

  def syntactic(self, a: str, b: str) -> float:
    return self._get(a, b)[0]

  def geographic(self, a: str, b: str) -> float:
    return self._get(a, b)[1]


def _tsv_rows(path: Union[str, TextIO]) -> tuple[str, list[list[str]]]:
  """(name, rows) of a TSV file or text stream, '#' lines skipped."""
  if not isinstance(path, str):
    return "<stream>", list(csv.reader(
        (l for l in path if not l.startswith("#")), delimiter="\t"))
  with open(path) as f:
    return path, _tsv_rows(f)[1]


def load_table(path: Union[str, TextIO] = DISTANCES_TSV) -> DistanceTable:
  """Reads a TSV `code_a code_b syntactic geographic` ('#' lines skipped)."""
  pairs = {}
  path, rows = _tsv_rows(path)
  if not rows or rows[0] != ["code_a", "code_b", "syntactic", "geographic"]:
    raise ValueError(f"{path}: expected header code_a, code_b, syntactic, "
                     f"geographic; got {rows[:1]}")
  for n, row in enumerate(rows[1:], start=2):
    try:
      a, b, syn, geo = row
      pairs[(a, b) if a < b else (b, a)] = (float(syn), float(geo))
    except ValueError as e:
      raise ValueError(f"{path}: bad row {n}: {row} ({e})") from e
  return DistanceTable(pairs, source=path)


def write_table(f: TextIO, source: DistanceSource, codes: Sequence[str],
                header: Sequence[str] = ()) -> None:
  """Writes the `load_table` TSV of all pairs of `codes` to stream `f`."""
  codes = sorted(set(codes))
  for line in header:
    f.write(f"# {line}\n")
  f.write("code_a\tcode_b\tsyntactic\tgeographic\n")
  for i, a in enumerate(codes):
    for b in codes[i + 1:]:
      f.write(f"{a}\t{b}\t{source.syntactic(a, b):.4f}\t"
              f"{source.geographic(a, b):.4f}\n")


class Distances2Zip:
  """lang2vec's `distances2.zip`: sparse upper-triangular matrices.

  Each member `<kind>_upper*_sparse.npz` is a scipy sparse (N, N) matrix
  whose [i, j] (i < j) is the distance between languages i and j of
  `distances_languages.txt` (one comma-separated line).
  """
  MEMBERS = {"syntactic": "syntactic_upper_round2_sparse.npz",
             "geographic": "geographic_upper_round1_sparse.npz"}

  def __init__(self, zip_path: str, languages_path: Optional[str] = None):
    if not os.path.isfile(zip_path):
      raise FileNotFoundError(f"distances2.zip not found: {zip_path}")
    candidates = [languages_path] if languages_path else [
        os.path.join(os.path.dirname(zip_path), "distances_languages.txt")]
    languages_path = next((p for p in candidates if os.path.isfile(p)), None)
    if languages_path is None:
      raise FileNotFoundError(
          f"Language list for {zip_path} not found (looked for "
          f"{candidates}); it is lang2vec/data/distances_languages.txt in the "
          "lang2vec GitHub repository")
    with open(languages_path) as f:
      self.languages = f.readline().strip().split(",")
    self.index = {l: i for i, l in enumerate(self.languages)}
    self.zip_path = zip_path
    self._matrices = {}

  def _matrix(self, kind: str):
    if kind not in self._matrices:
      from scipy import sparse  # Only this reader needs scipy.
      member = self.MEMBERS[kind]
      try:
        with zipfile.ZipFile(self.zip_path) as zf:
          data = zf.read(member)
      except KeyError as e:
        raise ValueError(f"{self.zip_path} has no member {member}") from e
      except zipfile.BadZipFile as e:
        raise ValueError(f"{self.zip_path} is not a zip file ({e})") from e
      m = sparse.load_npz(io.BytesIO(data)).tocsr()
      if m.shape != (len(self.languages),) * 2:
        raise ValueError(f"{self.zip_path}:{member} has shape {m.shape}, the "
                         f"language list has {len(self.languages)} entries")
      self._matrices[kind] = m
    return self._matrices[kind]

  def _get(self, kind: str, a: str, b: str) -> float:
    for code in (a, b):
      if code not in self.index:
        raise KeyError(f"{code!r} is not in the language list of "
                       f"{self.zip_path}")
    i, j = sorted((self.index[a], self.index[b]))
    return 0.0 if i == j else float(self._matrix(kind)[i, j])

  def syntactic(self, a: str, b: str) -> float:
    return self._get("syntactic", a, b)

  def geographic(self, a: str, b: str) -> float:
    return self._get("geographic", a, b)


def lang2vec_data_dir() -> str:
  spec = importlib.util.find_spec("lang2vec")
  if spec is None or not spec.submodule_search_locations:
    raise ModuleNotFoundError(
        "Recomputing URIEL distances needs lang2vec's data: pip install "
        "lang2vec==1.1.2 (or pass data_dir)")
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


def syntactic_angle(a: np.ndarray, b: np.ndarray) -> float:
  """Angle between two languages' syntax, in right angles (0 to 2).

  a, b: binary features with -1 where unobserved. Over the features both
  have, coded +-1, the angle is arccos(1 - 2 f) for a share f that differ:
  0 for identical, 1 when half differ (uncorrelated), 2 when all do; NaN
  when no feature is observed in both (frr has none at all).
  """
  shared = (a >= 0) & (b >= 0)
  if not shared.any():
    return float("nan")
  differ = float(np.mean(a[shared] != b[shared]))
  return float(np.arccos(1.0 - 2.0 * differ) / (np.pi / 2))


class Lang2VecUriel:
  """Distances recomputed from lang2vec's URIEL feature files."""

  def __init__(self, data_dir: Optional[str] = None,
               calibration_stride: int = 4):
    from lta.languages import geo as uriel_geo
    self.data_dir = data_dir or lang2vec_data_dir()
    self.geo = uriel_geo.GeoCoordinates.from_lang2vec(
        os.path.join(self.data_dir, "geocoord_features.npz"),
        calibration_stride=calibration_stride)
    path = os.path.join(self.data_dir, "features.npz")
    with np.load(path) as d:
      feats = [str(f) for f in d["feats"]]
      sources = [str(s) for s in d["sources"]]
      cols = [i for i, f in enumerate(feats) if f.startswith("S_")]
      data = d["data"][:, cols][:, :, [sources.index(s)
                                       for s in SYNTAX_SOURCES]]
      # -1 (unobserved) loses to any observed 0 or 1, as in lang2vec.
      self._syntax = data.max(axis=2)
      self._syntax_index = {str(l): i for i, l in enumerate(d["langs"])}
    self._syntax_path = path

  def syntax_vector(self, code: str) -> np.ndarray:
    if code not in self._syntax_index:
      raise KeyError(f"{code!r} not in {self._syntax_path}")
    return self._syntax[self._syntax_index[code]]

  def syntactic(self, a: str, b: str) -> float:
    return syntactic_angle(self.syntax_vector(a), self.syntax_vector(b))

  def geographic(self, a: str, b: str) -> float:
    return self.geo.distance(a, b)


@dataclasses.dataclass(frozen=True)
class Related:
  language: str
  syntactic: float
  geographic: float


def select_related(target: str, candidates: Sequence[str],
                   source: DistanceSource,
                   rule: SelectionRule = SelectionRule()) -> list[Related]:
  """Candidates `rule` calls related, by syntactic then geographic."""
  t = uriel_code(target, rule.macro)
  out = []
  for lang in candidates:
    c = uriel_code(lang, rule.macro)
    syn, geo = source.syntactic(t, c), source.geographic(t, c)
    if np.isnan(syn) or np.isnan(geo):
      raise ValueError(f"No {'syntactic' if np.isnan(syn) else 'geographic'}"
                       f" distance between {t!r} and {c!r}: URIEL observes "
                       "too little of one of them")
    if rule.related(syn, geo):
      out.append(Related(lang, syn, geo))
  return sorted(out, key=lambda r: (r.syntactic, r.geographic, r.language))


def related_table(targets: Sequence[str], sources: Sequence[str],
                  source: DistanceSource,
                  rule: SelectionRule = SelectionRule()
                  ) -> dict[str, list[Related]]:
  return {t: select_related(t, sources, source, rule) for t in targets}


SELECTIONS = ("paper", "uriel")
# How related languages are chosen: a name in SELECTIONS, or a ranking of
# one's own, {target: its related languages, nearest first} (a synthetic
# world's, `lta.synthetic.world.WorldInfo.related_sources`).
Selection = Union[str, Mapping[str, Sequence[str]]]


def related_sources(target: str, candidates: Sequence[str],
                    selection: Selection = "paper",
                    rule: SelectionRule = SelectionRule()) -> list[str]:
  """Related languages of `target` among `candidates`.

  selection='paper': the paper's Table 5 (kept in its order), restricted to
  the candidates; 'uriel': `rule` applied to the committed distance table;
  a ranking {target: languages}: that order, restricted to the candidates.
  """
  if isinstance(selection, Mapping):
    if target not in selection:
      raise ConfigError(f"The ranking of related languages has no row for "
                        f"{target!r}; it covers {sorted(selection)}")
    chosen = [s for s in selection[target] if s in candidates]
  elif selection == "paper":
    if target not in PAPER_TABLE5:
      raise ConfigError(
          f"The paper's Table 5 has no row for {target!r}; it covers "
          f"{sorted(PAPER_TABLE5)}. Use selection='uriel'.")
    chosen = [s for s in PAPER_TABLE5[target] if s in candidates]
  elif selection == "uriel":
    try:
      chosen = [r.language for r in select_related(target, candidates,
                                                   load_table(), rule)]
    except KeyError as e:
      raise ConfigError(f"selection='uriel': {e.args[0]}") from e
  else:
    raise ConfigError(f"selection={selection!r}; expected one of "
                      f"{list(SELECTIONS)}")
  if not chosen:
    how = (f"selection={selection!r}" if isinstance(selection, str)
           else f"ranked {list(selection[target])}")
    raise ConfigError(f"No related language of {target!r} among "
                      f"{list(candidates)} ({how})")
  return chosen


def related_by_target(targets: Sequence[str], candidates: Sequence[str],
                      selection: Selection = "paper") -> dict[str, list[str]]:
  """{target: its `related_sources` among `candidates`}.

  What a job that runs the related compositions (Eq. 3 and 4 over related
  sources) chooses once, before any work, and passes to each of them.
  """
  return {t: related_sources(t, candidates, selection)
          for t in dict.fromkeys(targets)}


def format_table5(selection: Mapping[str, Sequence[str]]) -> str:
  """The paper's layout: one column per target, sources ranked downwards."""
  targets = list(selection)
  depth = max((len(v) for v in selection.values()), default=0)
  lines = ["\t".join(t.capitalize() for t in targets)]
  for i in range(depth):
    lines.append("\t".join(
        selection[t][i].capitalize() if i < len(selection[t]) else ""
        for t in targets).rstrip("\t"))
  return "\n".join(lines)


def write_related(f: TextIO, table: Mapping[str, Sequence[Related]],
                  header: Sequence[str] = ()) -> None:
  """Writes the `read_related` TSV to stream `f`."""
  for line in header:
    f.write(f"# {line}\n")
  f.write("target\trank\tsource\tsyntactic\tgeographic\n")
  for target, rows in table.items():
    for rank, r in enumerate(rows, start=1):
      f.write(f"{target}\t{rank}\t{r.language}\t{r.syntactic:.4f}\t"
              f"{r.geographic:.4f}\n")


def read_related(path: Union[str, TextIO] = RELATED_TSV
                 ) -> dict[str, list[Related]]:
  out: dict[str, list[Related]] = {}
  path, rows = _tsv_rows(path)
  if not rows or rows[0] != ["target", "rank", "source", "syntactic",
                             "geographic"]:
    raise ValueError(f"{path}: unexpected header {rows[:1]}")
  for target, _, lang, syn, geo in rows[1:]:
    out.setdefault(target, []).append(Related(lang, float(syn), float(geo)))
  return out


@dataclasses.dataclass(frozen=True)
class Agreement:
  """How a selection agrees with Table 5: one decision per (target, seen)."""
  decisions: int  # (target, source) pairs both select or both leave out
  total: int
  exact_sets: int  # targets whose whole set of sources is the paper's
  selected: int  # sources selected, over all targets (the paper: 34)


def agreement_with_paper(table: Mapping[str, Sequence[Related]]
                         ) -> Agreement:
  decisions = exact = selected = 0
  for target, paper in PAPER_TABLE5.items():
    chosen = {r.language for r in table.get(target, [])}
    decisions += sum((s in chosen) == (s in paper) for s in XLSUM_SEEN)
    exact += chosen == set(paper)
    selected += len(chosen)
  return Agreement(decisions, len(PAPER_TABLE5) * len(XLSUM_SEEN), exact,
                   selected)


def compare_with_paper(table: Mapping[str, Sequence[Related]]
                       ) -> dict[str, tuple[list[str], list[str]]]:
  """{target: (only computed, only in the paper)} where they differ."""
  diff = {}
  for target, paper in PAPER_TABLE5.items():
    computed = [r.language for r in table.get(target, [])]
    extra = [l for l in computed if l not in paper]
    missing = [l for l in paper if l not in computed]
    if extra or missing:
      diff[target] = (extra, missing)
  return diff


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--distances2", help="lang2vec distances2.zip to use")
  parser.add_argument("--languages", help="its distances_languages.txt")
  parser.add_argument("--recompute", action="store_true",
                      help="recompute from lang2vec's feature files")
  parser.add_argument("--individual_codes", action="store_true",
                      help="arb cmn swh pes npi instead of the "
                           "macrolanguages ara zho swa fas nep")
  parser.add_argument("--syntactic_max", type=float, default=SYNTACTIC_MAX)
  parser.add_argument("--geographic_max", type=float, default=GEOGRAPHIC_MAX)
  parser.add_argument("--geographic_decimals", type=int, default=1,
                      help="round geographic distances first (negative: "
                           "do not round)")
  args = parser.parse_args(argv)
  rule = SelectionRule(
      syntactic_max=args.syntactic_max, geographic_max=args.geographic_max,
      geographic_decimals=(None if args.geographic_decimals < 0
                           else args.geographic_decimals),
      macro=not args.individual_codes)
  if args.distances2:
    source = Distances2Zip(args.distances2, args.languages)
  elif args.recompute:
    source = Lang2VecUriel()
  else:
    source = load_table()
  table = related_table(XLSUM_UNSEEN, XLSUM_SEEN, source, rule)
  print("Computed:")
  print(format_table5({t: [r.language for r in v] for t, v in table.items()}))
  print("\nPaper (Table 5):")
  print(format_table5(PAPER_TABLE5))
  print("\nDifferences (target: only computed | only paper):")
  for t, (extra, missing) in compare_with_paper(table).items():
    print(f"{t}: {' '.join(extra) or '-'} | {' '.join(missing) or '-'}")
  agree = agreement_with_paper(table)
  print(f"\nAgreement: {agree.decisions} of {agree.total} decisions, "
        f"{agree.exact_sets} of {len(PAPER_TABLE5)} exact sets, "
        f"{agree.selected} sources selected (the paper: "
        f"{sum(map(len, PAPER_TABLE5.values()))})")


if __name__ == "__main__":
  main()
