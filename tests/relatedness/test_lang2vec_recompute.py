"""Recomputing URIEL distances from lang2vec 1.1.2's data (test extra)."""

import numpy as np
import pytest

from lta import relatedness as rel
from lta import uriel_geo

README_GEOGRAPHIC = {("frr", "dan"): 0.0028, ("frr", "deu"): 0.0359,
                     ("dan", "deu"): 0.0361}


@pytest.fixture(scope="module")
def uriel():
  return rel.Lang2VecUriel(calibration_stride=8)


def test_geographic_distance_matches_lang2vec_reference(uriel):
  for (a, b), want in README_GEOGRAPHIC.items():
    assert abs(uriel.geographic(a, b) - want) < 1e-3


def test_coordinates_reproduce_every_feature(uriel):
  for code in ("eng", "jpn", "yor", "ind", "frr"):
    assert uriel.geo.residual(code) < 1e-4
  lat, lon = uriel.geo.coordinates("jpn")
  assert abs(lat - 35.0) < 0.5 and abs(lon - 135.0) < 0.5


def test_recomputed_distances_match_the_committed_table(uriel):
  table = rel.load_table()
  for a, b in [("mar", "ben"), ("cmn", "eng"), ("por", "arb"),
               ("som", "swh"), ("pes", "tur"), ("ara", "yor")]:
    assert uriel.syntactic(a, b) == pytest.approx(table.syntactic(a, b),
                                                  abs=1e-4)
    assert uriel.geographic(a, b) == pytest.approx(table.geographic(a, b),
                                                   abs=2e-4)


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
