"""Language coordinates recovered from URIEL's 'geo' features.

lang2vec 1.1.2 ships no coordinates, only, per language, its distance to 299
fixed points (`geocoord_features.npz`): feature j = angle(language, P_j) / pi,
i.e. great-circle distance over the antipodal distance, to 4 decimals. The
feature names give the points rounded to whole degrees ('GC_-83_42'); the
points themselves lie on a golden-angle spiral plus the north pole, so the
rounding moves them by up to half a degree, which would cost about 1e-3 in
distance.

We therefore (1) calibrate the points: starting from the rounded names,
alternate Gauss-Newton fits of all languages given the points and of all
points given the languages (the problem is symmetric); then (2) trilaterate
each language against the calibrated points. The fit reproduces every
feature to within 6e-5, i.e. to the features' own rounding, and gives
URIEL's geographic distance as the angle between two languages over pi.
Languages whose features are all 1.0 (zxx, mul, und, ...) have no location.
"""

from __future__ import annotations

import numpy as np


def unit_vectors(lat_lon_deg: np.ndarray) -> np.ndarray:
  lat, lon = np.radians(lat_lon_deg[..., 0]), np.radians(lat_lon_deg[..., 1])
  return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                   np.sin(lat)], axis=-1)


def lat_lon(v: np.ndarray) -> np.ndarray:
  return np.stack([np.degrees(np.arcsin(np.clip(v[..., 2], -1, 1))),
                   np.degrees(np.arctan2(v[..., 1], v[..., 0]))], axis=-1)


def fit_on_sphere(anchors: np.ndarray, features: np.ndarray,
                  iterations: int = 6) -> np.ndarray:
  """Unit vectors x_k minimising sum_j (angle(x_k, anchor_j)/pi - f_kj)^2.

  anchors: (J, 3) unit vectors; features: (K, J). A linear solve of
  cos(pi f) = anchors @ x starts Gauss-Newton steps in the tangent plane.
  The Jacobian row of anchor j is -w_j t_j, with t_j = a_j - (a_j.x) x its
  tangent part and w_j = 1 / (pi sin angle); the normal matrix
  sum_j w_j^2 t_j t_j^T is expanded so that only (K, J) arrays are formed.
  """
  x = np.linalg.lstsq(anchors, np.cos(np.pi * features).T, rcond=None)[0].T
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  outer = (anchors[:, :, None] * anchors[:, None, :]).reshape(-1, 9)
  for _ in range(iterations):
    dots = np.clip(x @ anchors.T, -1 + 1e-12, 1 - 1e-12)
    residual = np.arccos(dots) / np.pi - features
    w = 1.0 / (np.pi * np.sqrt(1 - dots**2))
    w2 = w * w
    u = (w2 * dots) @ anchors
    xx = x[:, :, None] * x[:, None, :]
    # x x^T fills the normal direction so the 3x3 system is regular.
    normal = ((w2 @ outer).reshape(-1, 3, 3)
              - u[:, :, None] * x[:, None, :] - x[:, :, None] * u[:, None, :]
              + ((w2 * dots**2).sum(1) + 1.0)[:, None, None] * xx)
    wr = w * residual
    grad = (wr * dots).sum(1)[:, None] * x - wr @ anchors
    x = x - np.linalg.solve(normal, grad[..., None])[..., 0]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x


class GeoCoordinates:
  """Coordinates and geographic distances of URIEL languages."""

  def __init__(self, points: np.ndarray, features: np.ndarray,
               languages: list[str], source: str = "geo features"):
    self.points = points
    self.features = features
    self.index = {l: i for i, l in enumerate(languages)}
    self.source = source
    self._cache: dict[str, np.ndarray] = {}

  @classmethod
  def from_lang2vec(cls, path: str, calibration_stride: int = 4,
                    rounds: int = 4) -> "GeoCoordinates":
    """Loads `geocoord_features.npz` and calibrates its fixed points.

    calibration_stride: calibrate on every n-th located language (1 = all
      7965); every 4th gives the same distances to 1e-5, 3x faster.
    """
    with np.load(path) as d:
      names = [str(f) for f in d["feats"]]
      features = d["data"][:, :, 0].astype(np.float64)
      languages = [str(l) for l in d["langs"]]
    try:
      rounded = np.array([[float(v) for v in n[len("GC_"):].split("_")]
                          for n in names])
    except ValueError as e:
      raise ValueError(f"{path}: feature names are not GC_<lat>_<lon>: "
                       f"{names[:3]}") from e
    located = ~np.all(features == 1.0, axis=1)
    sample = features[located][::calibration_stride]
    points = unit_vectors(rounded)
    for _ in range(rounds):
      langs = fit_on_sphere(points, sample)
      points = fit_on_sphere(langs, sample.T)
    features = np.where(located[:, None], features, np.nan)
    return cls(points, features, languages, source=path)

  def vector(self, code: str) -> np.ndarray:
    if code not in self._cache:
      if code not in self.index:
        raise KeyError(f"{code!r} not in {self.source}")
      f = self.features[self.index[code]]
      if np.isnan(f).any():
        raise ValueError(f"{code!r} has no location in {self.source} (all "
                         "its distance features are 1.0)")
      self._cache[code] = fit_on_sphere(self.points, f[None])[0]
    return self._cache[code]

  def coordinates(self, code: str) -> tuple[float, float]:
    lat, lon = lat_lon(self.vector(code))
    return float(lat), float(lon)

  def residual(self, code: str) -> float:
    """Largest |fitted - stored| feature: how well `code` was located."""
    fitted = np.arccos(np.clip(self.points @ self.vector(code), -1, 1)) / np.pi
    return float(np.max(np.abs(fitted - self.features[self.index[code]])))

  def distance(self, a: str, b: str) -> float:
    """URIEL geographic distance: great circle / antipodal = angle / pi."""
    if a == b:
      return 0.0
    cos = float(np.clip(self.vector(a) @ self.vector(b), -1.0, 1.0))
    return float(np.arccos(cos) / np.pi)

