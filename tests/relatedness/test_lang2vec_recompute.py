"""Recomputing URIEL distances from lang2vec 1.1.2's data (test extra)."""

import io

import numpy as np
import pytest

from lta.languages import related as rel
from lta.languages import geo as uriel_geo
from lta.languages import make_uriel_tables

README_GEOGRAPHIC = {("frr", "dan"): 0.0028, ("frr", "deu"): 0.0359,
                     ("dan", "deu"): 0.0361}


@pytest.fixture(scope="module")
def uriel():
  return rel.Lang2VecUriel(
      calibration_stride=make_uriel_tables.CALIBRATION_STRIDE)


def test_geographic_distance_matches_lang2vec_reference(uriel):
  for (a, b), want in README_GEOGRAPHIC.items():
    assert abs(uriel.geographic(a, b) - want) < 1e-3


def test_coordinates_reproduce_every_feature(uriel):
  for code in ("eng", "jpn", "yor", "ind", "frr"):
    assert uriel.geo.residual(code) < 1e-4
  lat, lon = uriel.geo.coordinates("jpn")
  assert abs(lat - 35.0) < 0.5 and abs(lon - 135.0) < 0.5


def test_committed_tables_equal_what_the_maker_computes(uriel):
  tables = make_uriel_tables.compute_tables(uriel)
  for name, path in make_uriel_tables.FILES.items():
    with open(path) as f:
      assert f.read() == tables[name], (
          f"{path} is stale: run python -m lta.languages.make_uriel_tables")
  agree = rel.agreement_with_paper(rel.read_related(
      io.StringIO(tables["related"])))
  assert agree.decisions >= 102


def test_syntax_is_the_union_of_observed_sources(uriel):
  # Persian: WALS, SSWL and Ethnologue together observe 85 of 103 features;
  # the macrolanguage 'ara' more than MSA 'arb' (98 vs 66).
  assert (uriel.syntax_vector("pes") >= 0).sum() == 85
  assert (uriel.syntax_vector("ara") >= 0).sum() == 98
  assert (uriel.syntax_vector("arb") >= 0).sum() == 66
  assert (uriel.syntax_vector("frr") < 0).all()
  assert np.isnan(uriel.syntactic("frr", "dan"))


def test_unlocated_language_is_refused(uriel):
  with pytest.raises(ValueError, match="'zxx' has no location"):
    uriel.geographic("zxx", "eng")
  with pytest.raises(KeyError, match="'qqq' not in"):
    uriel.syntactic("qqq", "eng")


def test_fit_on_sphere_recovers_known_points():
  rng = np.random.default_rng(0)
  anchors = uriel_geo.unit_vectors(
      np.stack([rng.uniform(-90, 90, 50), rng.uniform(-180, 180, 50)], -1))
  truth = uriel_geo.unit_vectors(np.array([[52.0, -1.0], [-33.9, 151.2]]))
  features = np.arccos(np.clip(truth @ anchors.T, -1, 1)) / np.pi
  fitted = uriel_geo.fit_on_sphere(anchors, np.round(features, 4))
  np.testing.assert_allclose(uriel_geo.lat_lon(fitted),
                             [[52.0, -1.0], [-33.9, 151.2]], atol=0.02)
