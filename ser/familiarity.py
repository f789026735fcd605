"""How alike a recording is to the speech a model learnt from.

A model's probabilities say nothing useful about a recording unlike all of its training data
(music, a distant phone, a room and microphone far from its corpora): it still answers, and
may answer sure of itself. So every model carries a summary of its training clips, and a
recording far outside them gets a caveat beside the answer.

The path: a clip's features -> ``summary`` (each column's mean and spread over the clip's
frames, or the whole-clip vector itself) -> standardised by the training clips' means and
spreads -> whitened by their (shrunk) correlations -> ``distance``, the root mean square of
that: a Mahalanobis distance per dimension. It is compared with the distance that
``percentile`` of the training clips stay within (the ``threshold``). Correlations matter:
noise, music or a strange channel shows less as one odd column than as columns that no longer
move together as speech makes them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

DEFAULT_PERCENTILE = 99.0
_MIN_SCALE = 1e-6
# The correlations are shrunk this far towards none: a few thousand clips estimate a
# 144 x 144 matrix only roughly, and its smallest directions would be noise.
_SHRINKAGE = 0.1
# Summaries wider than this (ComParE's 6,373 functionals) are whitened along their first
# ``_WIDE_DIRECTIONS`` principal directions only: a full whitening would be millions of numbers
# in the model's JSON, estimated from a few thousand clips.
_MAX_FULL_WIDTH = 256
_WIDE_DIRECTIONS = 16


def summary(features: np.ndarray) -> np.ndarray:
    """One vector per clip: each column's mean and standard deviation over the frames of a
    (frames, columns) array; a whole-clip vector as it is."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 1:
        return features
    return np.concatenate([features.mean(axis=0), features.std(axis=0)])


@dataclass(frozen=True)
class Familiarity:
    """The training clips' summaries, reduced to a centre, a spread, a whitening and a threshold."""

    centre: tuple[float, ...]
    scale: tuple[float, ...]
    # W: W.T @ W is the inverse of the correlations (for wide summaries, of their first
    # principal directions: then W has a row per direction)
    whitening: tuple[tuple[float, ...], ...]
    threshold: float  # the distance that ``percentile`` % of the training clips stay within
    percentile: float = DEFAULT_PERCENTILE
    clips: int = 0  # how many training clips it was fitted on

    def distance(self, features: np.ndarray) -> float:
        """How far a clip's summary lies from the training clips' (0: at their centre)."""
        return float(self.distances(summary(features)[np.newaxis])[0])

    def distances(self, summaries: np.ndarray) -> np.ndarray:
        """``distance`` for each row of already summarised clips."""
        centre, scale, whitening = self._arrays
        z = (summaries - centre) / scale
        return np.sqrt(np.mean((z @ whitening.T) ** 2, axis=1))

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fields as arrays, made once: every answer the app gives is checked with them."""
        return np.asarray(self.centre), np.asarray(self.scale), np.asarray(self.whitening)

    def is_unfamiliar(self, features: np.ndarray) -> bool:
        return self.distance(features) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "centre": [round(v, 6) for v in self.centre],
            "scale": [round(v, 6) for v in self.scale],
            "whitening": [[round(v, 5) for v in row] for row in self.whitening],
            "threshold": round(self.threshold, 6),
            "percentile": self.percentile,
            "clips": self.clips,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Familiarity:
        centre, scale = tuple(map(float, data["centre"])), tuple(map(float, data["scale"]))
        whitening = tuple(tuple(map(float, row)) for row in data["whitening"])
        if len(centre) != len(scale) or not all(s > 0 for s in scale):
            raise ValueError("familiarity: centre and scale must be as long, scales positive")
        if not 0 < len(whitening) <= len(centre) or any(
            len(row) != len(centre) for row in whitening
        ):
            raise ValueError(
                "familiarity.whitening must have rows as wide as centre, at most as many"
            )
        if not float(data["threshold"]) > 0:
            raise ValueError("familiarity.threshold must be positive")
        return cls(
            centre,
            scale,
            whitening,
            float(data["threshold"]),
            float(data.get("percentile", DEFAULT_PERCENTILE)),
            int(data.get("clips", 0)),
        )


def fit_familiarity(
    features: Sequence[np.ndarray], *, percentile: float = DEFAULT_PERCENTILE
) -> Familiarity:
    """The familiarity of the clips a model learnt from.

    The threshold is measured out of sample (each half of the clips scored by a fit on the
    other half): scored against itself, a fit finds its own clips closer than a new recording
    of the same kind would be, and would call too many new ones unfamiliar.
    """
    summaries = np.stack([summary(f) for f in features])
    if len(summaries) < 4:
        raise ValueError("familiarity needs at least four training clips")
    halves = (summaries[0::2], summaries[1::2])
    distances = np.concatenate(
        [_fit(fitted_on).distances(scored) for fitted_on, scored in (halves, halves[::-1])]
    )
    threshold = max(float(np.percentile(distances, percentile)), _MIN_SCALE)
    whole = _fit(summaries)
    return replace(whole, threshold=threshold, percentile=percentile, clips=len(summaries))


def _fit(summaries: np.ndarray) -> Familiarity:
    """Centre, spread and whitening of ``summaries`` (threshold still to be set)."""
    centre = summaries.mean(axis=0)
    scale = np.maximum(summaries.std(axis=0), _MIN_SCALE)
    z = (summaries - centre) / scale
    if z.shape[1] > _MAX_FULL_WIDTH:
        whitening = _principal_whitening(z, directions=_WIDE_DIRECTIONS)
    else:
        correlation = (1 - _SHRINKAGE) * (z.T @ z) / len(z) + _SHRINKAGE * np.eye(z.shape[1])
        # With correlation = L L.T (Cholesky), W = inverse(L) gives |W z|^2 = z.T inverse(correlation) z.
        whitening = np.linalg.inv(np.linalg.cholesky(correlation))
    return Familiarity(
        tuple(centre), tuple(scale), tuple(tuple(row) for row in whitening), threshold=1.0
    )


def _principal_whitening(z: np.ndarray, *, directions: int) -> np.ndarray:
    """(directions, width): the first principal directions of standardised ``z``, each divided
    by its (shrunk) spread, so that |W z|^2 is the Mahalanobis distance within them."""
    _, singular, axes = np.linalg.svd(z, full_matrices=False)
    variance = (1 - _SHRINKAGE) * singular[:directions] ** 2 / len(z) + _SHRINKAGE
    return axes[:directions] / np.sqrt(variance)[:, np.newaxis]
