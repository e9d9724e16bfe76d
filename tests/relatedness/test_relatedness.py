"""Related-language selection from the committed URIEL tables."""

import io
import zipfile

import numpy as np
import pytest
from scipy import sparse

from lta import relatedness as rel

# lang2vec README: l2v.distance('geographic', 'frr', 'dan', 'deu').
README_GEOGRAPHIC = {("frr", "dan"): 0.0028, ("frr", "deu"): 0.0359,
                     ("dan", "deu"): 0.0361}


def test_committed_geographic_distances_match_lang2vec_reference():
  table = rel.load_table()
  for (a, b), want in README_GEOGRAPHIC.items():
    assert abs(table.geographic(a, b) - want) < 1e-3
    assert table.geographic(b, a) == table.geographic(a, b)


def test_committed_related_table_is_reproduced():
  table = rel.related_table(rel.XLSUM_UNSEEN, rel.XLSUM_SEEN,
                            rel.load_table())
  committed = rel.read_related()
  assert list(committed) == list(rel.XLSUM_UNSEEN)
  for target in rel.XLSUM_UNSEEN:
    assert [r.language for r in table[target]] == [
        r.language for r in committed[target]]
    for got, want in zip(table[target], committed[target]):
      assert got.syntactic == pytest.approx(want.syntactic, abs=1e-4)
      assert got.geographic == pytest.approx(want.geographic, abs=1e-4)
      assert got.syntactic < 0.7 and got.geographic < 0.3
    syn = [r.syntactic for r in table[target]]
    assert syn == sorted(syn)


def test_computed_table_covers_most_of_the_papers_selection():
  table = rel.read_related()
  diff = rel.compare_with_paper(table)
  missing = {t: m for t, (_, m) in diff.items() if m}
  # English is > 0.3 antipodes from China and Somalia, Swahili from
  # Ukraine, so no correct great-circle distance keeps these three.
  assert missing == {"zh": ["en"], "so": ["en"], "uk": ["sw"]}
  geo = rel.load_table()
  for t, m in missing.items():
    assert geo.geographic(rel.uriel_code(t), rel.uriel_code(m[0])) > 0.3


def test_thresholds_are_configurable():
  strict = rel.select_related("mr", rel.XLSUM_SEEN, rel.load_table(),
                              syntactic_max=0.2, geographic_max=0.1)
  assert [r.language for r in strict] == ["bn", "te"]


def test_macrolanguage_codes():
  assert rel.uriel_code("ar") == "arb" and rel.uriel_code("zh") == "cmn"
  assert rel.uriel_code("ar", macro=True) == "ara"
  assert rel.uriel_code("fas") == "fas"
  table = rel.load_table()
  assert table.geographic("arb", "ara") > 0.05  # Egypt vs Arabia centroids
  with pytest.raises(KeyError, match="'xx'"):
    rel.uriel_code("xx")


def test_paper_preset_and_layout():
  assert rel.related_sources("ne", rel.XLSUM_SEEN) == [
      "te", "ja", "tr", "ko", "ru", "bn"]
  assert rel.related_sources("pt", ["en", "ar"]) == ["en", "ar"]
  with pytest.raises(KeyError, match="Table 5 has no row for 'de'"):
    rel.related_sources("de", rel.XLSUM_SEEN)
  text = rel.format_table5(rel.PAPER_TABLE5)
  lines = text.split("\n")
  assert lines[0] == "\t".join(["Mr", "Gu", "Zh", "Ne", "Pt", "Si", "So",
                                "Vi", "Yo", "Uk", "Fa"])
  assert lines[1].split("\t") == ["Bn", "Bn", "En", "Te", "En", "Te", "Ar",
                                  "Id", "En", "Ru", "Tr"]
  assert lines[6] == "\t\t\tBn"  # Ne's sixth source, alone in its row.
  assert len(lines) == 7


def test_uriel_selection_through_related_sources():
  assert rel.related_sources("vi", ["id", "th", "en"],
                             selection="uriel") == ["th", "id"]


def _write_distances2(tmp_path, languages, syn, geo):
  with open(tmp_path / "distances_languages.txt", "w") as f:
    f.write(",".join(languages) + "\n")
  with zipfile.ZipFile(tmp_path / "distances2.zip", "w") as zf:
    for member, dense in (
        ("syntactic_upper_round2_sparse.npz", syn),
        ("geographic_upper_round1_sparse.npz", geo)):
      buf = io.BytesIO()
      sparse.save_npz(buf, sparse.csr_matrix(np.triu(dense, 1)))
      zf.writestr(member, buf.getvalue())
  return str(tmp_path / "distances2.zip")


def test_distances2_zip_reader(tmp_path):
  languages = ["frr", "dan", "deu", "eng"]
  syn = np.array([[0, .66, .58, .7], [0, 0, .49, .5], [0, 0, 0, .45],
                  [0, 0, 0, 0]])
  geo = np.array([[0, 0.0, 0.0, .1], [0, 0, 0.0, .1], [0, 0, 0, .1],
                  [0, 0, 0, 0]])
  source = rel.Distances2Zip(_write_distances2(tmp_path, languages, syn, geo))
  assert source.syntactic("frr", "dan") == pytest.approx(0.66)
  assert source.syntactic("dan", "frr") == pytest.approx(0.66)
  assert source.syntactic("deu", "eng") == pytest.approx(0.45)
  assert source.geographic("eng", "frr") == pytest.approx(0.1)
  assert source.geographic("dan", "dan") == 0.0
  with pytest.raises(KeyError, match="'por' is not in the language list"):
    source.syntactic("por", "eng")


def test_distances2_zip_errors_name_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="distances2.zip not found"):
    rel.Distances2Zip(str(tmp_path / "distances2.zip"))
  (tmp_path / "distances2.zip").write_bytes(b"PK")
  with pytest.raises(FileNotFoundError, match="distances_languages.txt"):
    rel.Distances2Zip(str(tmp_path / "distances2.zip"))
  (tmp_path / "distances_languages.txt").write_text("eng,deu\n")
  source = rel.Distances2Zip(str(tmp_path / "distances2.zip"))
  with pytest.raises(ValueError, match="distances2.zip is not a zip file"):
    source.syntactic("eng", "deu")


def test_bad_table_names_the_file(tmp_path):
  path = tmp_path / "d.tsv"
  path.write_text("a\tb\n")
  with pytest.raises(ValueError, match="d.tsv: expected header"):
    rel.load_table(str(path))
  path.write_text("code_a\tcode_b\tsyntactic\tgeographic\neng\tdeu\tx\t1\n")
  with pytest.raises(ValueError, match="d.tsv: bad row 2"):
    rel.load_table(str(path))
  with pytest.raises(KeyError, match="no distances between 'eng' and 'xyz'"):
    rel.load_table().syntactic("eng", "xyz")
