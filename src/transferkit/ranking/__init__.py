"""Transferability estimators: score how well a backbone's output predicts the target labels.

Each estimator follows scikit-learn: ``__init__`` stores keyword parameters, ``fit(X, y)``
validates and returns ``self``, the result is in ``score_``; reading a learned attribute before
``fit`` raises `transferkit.errors.NotFittedError`.

Orientation: **higher is better for every score** (``higher_is_better`` is True on every class),
so candidates are ranked by sorting scores in descending order. The scales differ (LogME is a
per-sample log evidence, SFDA/LEEP/NCE are ≤ 0, GBC lies in [−C(C−1), 0], H-score ≥ 0, kNN is an
accuracy in [0, 1]): compare scores of one estimator across backbones, never across estimators.

Inputs: ``input_kind == "features"`` estimators take backbone features (N, D); ``LEEP`` and
``NCE`` (``input_kind == "source_probabilities"``) take the source head's class probabilities
(N, Z) instead (NCE also accepts 1-D source labels). Labels may be of any sortable type.

Bad input, shared by all: NaN/inf values, a non-2-D array, fewer than 2 classes, or a class
smaller than ``min_samples_per_class`` (2 for GBC and kNN, else 1) raise
`transferkit.errors.DataError`. Constant features give a finite, documented score (no
information: the "uninformative" value of each estimator). D ≫ N needs no fallback: every
feature estimator computes exactly in the ≤ N-dimensional span of the data (LogME uses the rank
of the features, not D; H-score and SFDA are regularised; GBC caps its PCA by the rank).
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

from transferkit.errors import ConfigError
from transferkit.ranking.gbc import GBC
from transferkit.ranking.hscore import HScore
from transferkit.ranking.knn import KNNAccuracy
from transferkit.ranking.leep import LEEP
from transferkit.ranking.logme import LogME
from transferkit.ranking.nce import NCE
from transferkit.ranking.sfda import SFDA
from transferkit.ranking.transferability import TransferabilityEstimator

#: Name (as used on the command line) → estimator class.
ESTIMATORS: dict[str, type[TransferabilityEstimator]] = {
    "logme": LogME,
    "sfda": SFDA,
    "hscore": HScore,
    "gbc": GBC,
    "leep": LEEP,
    "nce": NCE,
    "knn": KNNAccuracy,
}


def make_estimator(name: str, **params: Any) -> TransferabilityEstimator:
    """Create the estimator registered as ``name`` with keyword ``params``.

    Raises `ConfigError` naming the close matches for an unknown name.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in ESTIMATORS:
        close = get_close_matches(key, ESTIMATORS, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown transferability metric {name!r}; expected one of {', '.join(ESTIMATORS)}.{hint}"
        )
    return ESTIMATORS[key](**params)


__all__ = [
    "ESTIMATORS",
    "GBC",
    "LEEP",
    "NCE",
    "SFDA",
    "HScore",
    "KNNAccuracy",
    "LogME",
    "TransferabilityEstimator",
    "make_estimator",
]
