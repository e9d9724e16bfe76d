"""Regenerates the committed URIEL tables from lang2vec 1.1.2's features.

  pip install lang2vec==1.1.2
  python -m lta.data.make_uriel_tables

Writes, next to this file:
  uriel_distances.tsv          syntactic and geographic distances between all
                               pairs of the codes below
  uriel_coordinates.tsv        recovered latitude/longitude and fit residual
  related_languages_xlsum.tsv  related sources of the 11 unseen XLSum targets
                               among the 11 seen languages (paper thresholds)
"""

import os

from lta import relatedness

HERE = os.path.dirname(os.path.abspath(__file__))
# The paper's 22 languages (individual and macrolanguage codes), plus the
# three languages of lang2vec's README reference distances.
CODES = sorted(
    {relatedness.uriel_code(l) for l in relatedness.XLSUM_SEEN +
     relatedness.XLSUM_UNSEEN} |
    set(relatedness.MACROLANGUAGE.values()) | {"frr", "dan", "deu"})
PROVENANCE = [
    "Made by lta/data/make_uriel_tables.py from lang2vec 1.1.2 data.",
    "syntactic: cosine distance between syntax_knn vectors (103 features).",
    "geographic: angle / pi between coordinates trilaterated from the 'geo'",
    "features (great-circle / antipodal distance); see lta/uriel_geo.py.",
]


def main() -> None:
  source = relatedness.Lang2VecUriel(calibration_stride=1)
  relatedness.write_table(relatedness.DISTANCES_TSV, source, CODES,
                          PROVENANCE)
  with open(os.path.join(HERE, "uriel_coordinates.tsv"), "w") as f:
    for line in PROVENANCE[:1]:
      f.write(f"# {line}\n")
    f.write("code\tlatitude\tlongitude\tmax_feature_residual\n")
    for code in CODES:
      lat, lon = source.geo.coordinates(code)
      f.write(f"{code}\t{lat:.3f}\t{lon:.3f}\t{source.geo.residual(code):.1e}"
              "\n")
  table = relatedness.related_table(relatedness.XLSUM_UNSEEN,
                                    relatedness.XLSUM_SEEN,
                                    relatedness.load_table())
  relatedness.write_related(
      relatedness.RELATED_TSV, table,
      ["Sources with syntactic < 0.7 and geographic < 0.3 (paper, sec. 5.4),",
       "by syntactic then geographic distance, from uriel_distances.tsv;",
       "ar zh sw fa ne as arb cmn swh pes npi. Made by make_uriel_tables.py."])
  print(relatedness.format_table5(
      {t: [r.language for r in v] for t, v in table.items()}))


if __name__ == "__main__":
  main()
