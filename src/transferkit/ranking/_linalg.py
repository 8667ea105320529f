"""Numerical building blocks shared by the feature-based estimators (float64, inputs never modified).

Every routine here works on the smaller of the two Gram matrices (D × D or N × N), so that the
cost stays bounded by min(N, D) when one side is large — e.g. N = 2000 images of a 16k-dimensional
intermediate layer.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from transferkit.ranking.base import FloatArray, IntArray

_EPS = np.finfo(np.float64).eps


def class_means(X: FloatArray, y: IntArray, n_classes: int) -> FloatArray:
    """Mean feature vector of each class, shape (C, D)."""
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, y, X)
    return sums / np.bincount(y, minlength=n_classes)[:, None]


def principal_coordinates(X: FloatArray, n_components: int | None = None) -> tuple[FloatArray, FloatArray]:
    """PCA of X: return ``(scores, variances)`` of the leading components, largest first.

    ``scores`` (N, d) are the centred rows in the principal axes; ``variances`` (d,) their
    variances (divided by N). d is ``n_components`` capped by the numerical rank of the centred
    data (≤ N − 1), so zero-variance directions never appear — constant features give d = 0.
    Exact (an eigendecomposition of the smaller Gram matrix), hence deterministic.
    """
    n, dim = X.shape
    Xc = X - X.mean(axis=0)
    if dim <= n:
        evals, V = np.linalg.eigh(Xc.T @ Xc)
    else:
        evals, U = np.linalg.eigh(Xc @ Xc.T)
    evals, order = evals[::-1], np.arange(evals.size)[::-1]
    top = float(evals[0]) if evals.size else 0.0
    rank = int((evals > top * max(n, dim) * _EPS).sum()) if top > 0 else 0
    d = rank if n_components is None else min(n_components, rank)
    keep = order[:d]
    if dim <= n:
        scores = Xc @ V[:, keep]
    else:
        scores = U[:, keep] * np.sqrt(evals[:d])
    return scores, evals[:d] / n


def solve_psd(A: FloatArray, B: FloatArray) -> FloatArray:
    """A⁻¹ B for symmetric positive (semi)definite A.

    Cholesky when A is numerically positive definite; otherwise the pseudo-inverse through an
    eigendecomposition, dropping eigenvalues at rounding level (the H-score paper's ``pinv``).
    """
    try:
        return linalg.cho_solve(linalg.cho_factor(A, lower=True, check_finite=False), B, check_finite=False)
    except linalg.LinAlgError:
        evals, evecs = linalg.eigh(A)
        floor = max(float(evals[-1]), 0.0) * A.shape[0] * _EPS
        inv = np.zeros_like(evals)
        big = evals > floor
        inv[big] = 1.0 / evals[big]
        return evecs @ (inv[:, None] * (evecs.T @ B))
