r"""Cross-validated k-nearest-neighbour accuracy: the baseline every ranking table shows.

Why: studies that compare model-selection proxies find a plain kNN classifier on frozen features
hard to beat for ranking backbones (e.g. C. Renggli et al., "Which Model to Transfer? Finding the
Needle in the Growing Haystack", CVPR 2022, use kNN accuracy as their cheap proxy). It costs one
N × N similarity computation, so every ranking table reports it beside the dedicated estimators.

Definition: split the samples into ``n_splits`` stratified folds; for each fold, standardise the
features with the other folds' mean and standard deviation, find each held-out sample's k nearest
training samples (cosine similarity or euclidean distance), and predict the majority label, ties
going to the tied class with the nearest neighbour. The score is the out-of-fold accuracy

    kNN = 1/N Σ_i [ŷ_i = y_i]           (in [0, 1], higher is better).

Folds are assigned by content, not by position: within each class, samples are ordered by a hash
of their feature bytes and dealt to folds in turn. So the score does not change when samples are
shuffled or classes renamed, and needs no random seed. Standardising sets constant features to 0;
all-constant features leave only tie breaking, so the score is then near chance. Every class
needs 2 samples so that a held-out sample can have a same-class neighbour.
"""

from __future__ import annotations

import hashlib
from numbers import Integral
from typing import ClassVar, Literal

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from transferkit.ranking.transferability import FloatArray, IntArray, TransferabilityEstimator


def content_folds(X: FloatArray, y: IntArray, n_splits: int) -> IntArray:
    """Stratified fold index per sample, from a hash of each row's bytes (order-independent)."""
    keys = np.array(
        [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") for row in X]
    )
    folds = np.empty(X.shape[0], dtype=np.intp)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        order = members[np.argsort(keys[members], kind="stable")]
        folds[order] = np.arange(order.size) % n_splits
    return folds


def knn_predict(
    train: FloatArray, train_y: IntArray, test: FloatArray, n_classes: int, k: int, metric: str
) -> IntArray:
    """Majority vote of the k nearest training rows; ties go to the class with the nearest neighbour.

    Works through the test rows in blocks, so memory stays near 128 MB whatever N is.
    """
    k = min(k, train.shape[0])
    train_sq = (train * train).sum(axis=1)
    block = max(1, (1 << 24) // train.shape[0])
    out = np.empty(test.shape[0], dtype=np.intp)
    for start in range(0, test.shape[0], block):
        part = test[start : start + block]
        similarity = part @ train.T
        if metric == "euclidean":  # negative squared distance, so that larger is nearer in both cases
            similarity = 2.0 * similarity - train_sq[None, :] - (part * part).sum(axis=1)[:, None]
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        rows = np.arange(part.shape[0])[:, None]
        by_distance = np.argsort(-similarity[rows, nearest], axis=1, kind="stable")
        labels = train_y[np.take_along_axis(nearest, by_distance, axis=1)]  # (rows, k), nearest first
        votes = np.zeros((part.shape[0], n_classes), dtype=np.intp)
        first = np.full((part.shape[0], n_classes), k, dtype=np.intp)
        for j in range(k - 1, -1, -1):  # farthest to nearest, so `first` ends at the nearest rank
            votes[rows[:, 0], labels[:, j]] += 1
            first[rows[:, 0], labels[:, j]] = j
        # Most votes first; among those, the class whose first neighbour is nearest.
        out[start : start + block] = np.argmax(votes * (k + 1) + (k - first), axis=1)
    return out


class KNNAccuracy(TransferabilityEstimator):
    """Out-of-fold k-nearest-neighbour accuracy on standardised features (higher is better).

    Parameters
    ----------
    n_neighbors:
        k, the number of neighbours that vote.
    n_splits:
        Number of stratified folds.
    metric:
        ``"cosine"`` or ``"euclidean"``, on standardised features.

    Attributes
    ----------
    score_:
        Out-of-fold accuracy in [0, 1].
    folds_:
        Fold index of each sample (in input order).
    predictions_:
        Out-of-fold predicted class of each sample, as an index into ``classes_``.
    """

    min_samples_per_class = 2

    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_splits": [Interval(Integral, 2, None, closed="left")],
        "metric": [StrOptions({"cosine", "euclidean"})],
    }

    def __init__(
        self, *, n_neighbors: int = 5, n_splits: int = 5, metric: Literal["cosine", "euclidean"] = "cosine"
    ) -> None:
        self.n_neighbors = n_neighbors
        self.n_splits = n_splits
        self.metric = metric

    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        folds = content_folds(X, y, self.n_splits)
        predictions = np.empty_like(y)
        for fold in np.unique(folds):
            test_mask = folds == fold
            train, test = X[~test_mask], X[test_mask]
            mean = train.mean(axis=0)
            std = train.std(axis=0)
            # Constant columns (std at rounding level of the mean) are zeroed, not blown up to ±1.
            scale = np.where(std > 1e-12 * np.abs(mean), 1.0 / np.where(std > 0.0, std, 1.0), 0.0)
            train = (train - mean) * scale
            test = (test - mean) * scale
            if self.metric == "cosine":
                train = _unit_rows(train)
                test = _unit_rows(test)
            predictions[test_mask] = knn_predict(
                train, y[~test_mask], test, n_classes, self.n_neighbors, self.metric
            )
        self.folds_ = folds
        self.predictions_ = predictions
        return float((predictions == y).mean())


def _unit_rows(A: FloatArray) -> FloatArray:
    """Rows scaled to unit norm; all-zero rows stay zero."""
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norms > 0.0, norms, 1.0)
