"""Regenerates the committed URIEL tables from lang2vec 1.1.2's features.

  pip install lang2vec==1.1.2
  python -m lta.languages.make_uriel_tables

Writes, next to this file:
  uriel_distances.tsv          syntactic and geographic distances between all
                               pairs of the codes below
  uriel_coordinates.tsv        recovered latitude/longitude and fit residual
  related_languages_xlsum.tsv  related sources of the 11 unseen XLSum targets
                               among the 11 seen languages (paper thresholds,
                               `relatedness.SelectionRule()`)
tests/relatedness checks that the committed files equal `compute_tables()`.
"""

import io
import os

from lta.languages import related as relatedness

HERE = os.path.dirname(os.path.abspath(__file__))
# The paper's 22 languages (individual and macrolanguage codes), plus the
# three languages of lang2vec's README reference distances.
CODES = sorted(
    {relatedness.uriel_code(l) for l in relatedness.XLSUM_SEEN +
     relatedness.XLSUM_UNSEEN} |
    set(relatedness.MACROLANGUAGE.values()) | {"frr", "dan", "deu"})
# Calibrating the geo points on every 8th located language instead of all
# gives the same distance and related tables, to the digits written, in a
# fifth of the time (coordinates move by up to 0.001 degrees).
CALIBRATION_STRIDE = 8
PROVENANCE = [
    "Made by lta/languages/make_uriel_tables.py from lang2vec 1.1.2 data.",
    "syntactic: angle between the observed WALS|SSWL|Ethnologue syntax",
    "features both languages have, coded +-1, in right angles",
    "(relatedness.syntactic_angle); nan where no feature is observed in",
    "both (frr has none).",
    "geographic: angle / pi between coordinates trilaterated from the 'geo'",
    "features (great-circle / antipodal distance); see lta/languages/geo.py.",
]
FILES = {"distances": relatedness.DISTANCES_TSV,
         "coordinates": os.path.join(HERE, "uriel_coordinates.tsv"),
         "related": relatedness.RELATED_TSV}


def _text(write, *args) -> str:
  """What `write(path, *args)` writes, as a string."""
  buf = io.StringIO()
  write(buf, *args)
  return buf.getvalue()


def _write_coordinates(f, source: relatedness.Lang2VecUriel) -> None:
  for line in PROVENANCE[:1]:
    f.write(f"# {line}\n")
  f.write("code\tlatitude\tlongitude\tmax_feature_residual\n")
  for code in CODES:
    lat, lon = source.geo.coordinates(code)
    f.write(f"{code}\t{lat:.3f}\t{lon:.3f}\t{source.geo.residual(code):.1e}"
            "\n")


def compute_tables(source: relatedness.Lang2VecUriel = None
                   ) -> dict[str, str]:
  """{'distances' | 'coordinates' | 'related': file text}."""
  source = source or relatedness.Lang2VecUriel(
      calibration_stride=CALIBRATION_STRIDE)
  distances = _text(relatedness.write_table, source, CODES, PROVENANCE)
  table = relatedness.related_table(
      relatedness.XLSUM_UNSEEN, relatedness.XLSUM_SEEN,
      relatedness.load_table(io.StringIO(distances)))
  rule = relatedness.SelectionRule()
  related = _text(relatedness.write_related, table, [
      f"Sources with syntactic < {rule.syntactic_max} and geographic < "
      f"{rule.geographic_max} (paper, sec. 5.4),",
      f"geographic rounded to {rule.geographic_decimals} decimal first; by "
      "syntactic then geographic distance,",
      "from uriel_distances.tsv; macrolanguage codes (ar zh sw fa ne as ara "
      "zho swa fas nep).",
      "Made by make_uriel_tables.py."])
  return {"distances": distances,
          "coordinates": _text(_write_coordinates, source),
          "related": related}


def main() -> None:
  tables = compute_tables()
  for name, text in tables.items():
    with open(FILES[name], "w") as f:
      f.write(text)
  related = relatedness.read_related(FILES["related"])
  print(relatedness.format_table5(
      {t: [r.language for r in related.get(t, [])]
       for t in relatedness.XLSUM_UNSEEN}))


if __name__ == "__main__":
  main()
