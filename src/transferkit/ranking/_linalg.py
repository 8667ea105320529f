"""Numerical building blocks shared by the feature-based estimators (float64, inputs never modified).

Every routine here works on the smaller of the two Gram matrices (D × D or N × N), so that the
cost stays bounded by min(N, D) when one side is large — e.g. N = 2000 images of a 16k-dimensional
intermediate layer.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse
from scipy.sparse import linalg as sparse_linalg

from transferkit.ranking.transferability import FloatArray, IntArray

_EPS = np.finfo(np.float64).eps


def class_sums(X: FloatArray, y: IntArray, n_classes: int) -> FloatArray:
    """Sum of the rows of each class, shape (C, D): a sparse one-hot product, O(N D)."""
    onehot = sparse.csr_matrix((np.ones(y.size), (y, np.arange(y.size))), shape=(n_classes, y.size))
    return np.asarray(onehot @ X)


def class_means(X: FloatArray, y: IntArray, n_classes: int) -> FloatArray:
    """Mean feature vector of each class, shape (C, D)."""
    return class_sums(X, y, n_classes) / np.bincount(y, minlength=n_classes)[:, None]


def largest_eigenvalue(A: FloatArray) -> float:
    """Largest eigenvalue of a symmetric matrix: Lanczos (deterministic start) for large A."""
    if A.shape[0] <= 64:
        return float(np.linalg.eigvalsh(A)[-1])
    start = np.ones(A.shape[0]) / np.sqrt(A.shape[0])
    return float(sparse_linalg.eigsh(A, k=1, which="LA", v0=start, return_eigenvectors=False)[0])


def principal_coordinates(X: FloatArray, n_components: int | None = None) -> tuple[FloatArray, FloatArray]:
    """PCA of X: return ``(scores, variances)`` of the leading components, largest first.

    ``scores`` (N, d) are the centred rows in the principal axes; ``variances`` (d,) their
    variances (divided by N). d is ``n_components`` capped by the numerical rank of the centred
    data (≤ N − 1), so zero-variance directions never appear — constant features give d = 0.
    Exact (an eigendecomposition of the smaller Gram matrix), hence deterministic.
    """
    n, dim = X.shape
    Xc = X - X.mean(axis=0)
    gram = Xc.T @ Xc if dim <= n else Xc @ Xc.T
    m = gram.shape[0]
    # Only the leading components are needed: a partial eigendecomposition is ~3x cheaper.
    subset = None if n_components is None or n_components >= m else [m - n_components, m - 1]
    evals, vecs = linalg.eigh(gram, subset_by_index=subset)
    evals, vecs = evals[::-1], vecs[:, ::-1]  # largest first
    top = float(evals[0]) if evals.size else 0.0
    rank = int((evals > top * max(n, dim) * _EPS).sum()) if top > 0 else 0
    d = rank if n_components is None else min(n_components, rank)
    if dim <= n:  # vecs are principal axes in feature space
        scores = Xc @ vecs[:, :d]
    else:  # vecs are left singular vectors: scores = U S
        scores = vecs[:, :d] * np.sqrt(evals[:d])
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
