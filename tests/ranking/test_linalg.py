"""The ranking estimators' numerical building blocks (`ranking._linalg`), against numpy's direct answers on
small random matrices; neither side of the Gram matrix changes the result."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.ranking._linalg import class_means, class_sums, largest_eigenvalue, principal_coordinates, solve_psd


def test_class_sums_and_means() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), np.repeat([0, 2, 1], 10)
    sums = class_sums(X, y, 3)
    for c in range(3):
        np.testing.assert_allclose(sums[c], X[y == c].sum(0))
        np.testing.assert_allclose(class_means(X, y, 3)[c], X[y == c].mean(0))


@pytest.mark.parametrize("size", [5, 100])  # eigvalsh for small matrices, Lanczos for large ones
def test_largest_eigenvalue(size: int) -> None:
    A = np.random.default_rng(1).standard_normal((size, size))
    A = A @ A.T
    assert largest_eigenvalue(A) == pytest.approx(np.linalg.eigvalsh(A)[-1], rel=1e-8)


@pytest.mark.parametrize("shape", [(40, 6), (6, 40)])  # the D x D Gram matrix, then the N x N one
def test_principal_coordinates_are_the_pca_of_the_rows(shape: tuple[int, int]) -> None:
    X = np.random.default_rng(2).standard_normal(shape) * np.linspace(3, 0.5, shape[1])
    scores, variances = principal_coordinates(X)
    Xc = X - X.mean(0)
    singular = np.linalg.svd(Xc, compute_uv=False)
    rank = min(shape[0] - 1, shape[1])
    assert scores.shape == (shape[0], rank)
    np.testing.assert_allclose(variances, singular[:rank] ** 2 / shape[0], rtol=1e-8)
    np.testing.assert_allclose(np.abs(scores), np.abs(Xc @ np.linalg.svd(Xc)[2][:rank].T), atol=1e-8)
    top, _ = principal_coordinates(X, n_components=2)
    np.testing.assert_allclose(np.abs(top), np.abs(scores[:, :2]), atol=1e-8)
    assert principal_coordinates(np.ones((5, 3)))[0].shape == (5, 0)  # constant features: no component


def test_solve_psd_definite_and_singular() -> None:
    rng = np.random.default_rng(3)
    M = rng.standard_normal((5, 5))
    A, B = M @ M.T + np.eye(5), rng.standard_normal((5, 2))
    np.testing.assert_allclose(A @ solve_psd(A, B), B, atol=1e-10)
    singular = np.diag([3.0, 2.0, 0.0, 0.0, 0.0])  # rank 2: Cholesky fails, the pseudo-inverse answers
    np.testing.assert_allclose(solve_psd(singular, B), np.linalg.pinv(singular) @ B, atol=1e-8)
