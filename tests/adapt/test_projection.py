"""The reduction wide features are read through: a seeded sparse projection after pooled standardisation."""

from __future__ import annotations

import numpy as np

from transferkit.adapt.projection import REDUCED_DIM, random_projection, reduce_rows


def test_the_projection_is_seeded_sparse_and_only_for_wide_features() -> None:
    d = 4 * REDUCED_DIM
    p = random_projection(d, seed=3)
    assert p is not None and p.shape == (d, REDUCED_DIM)
    assert p.nnz < 0.1 * d * REDUCED_DIM  # very sparse: about 1/sqrt(d) of the entries
    again = random_projection(d, seed=3)
    assert again is not None and (p != again).nnz == 0
    assert random_projection(REDUCED_DIM) is None


def test_reduce_rows_is_pooled_standardisation_then_the_projection() -> None:
    rng = np.random.default_rng(0)
    d = 2 * REDUCED_DIM
    a, b = rng.normal(2.0, 3.0, size=(40, d)), rng.normal(-1.0, 0.5, size=(30, d))
    a[:, 0] = 7.0  # a constant dimension stays at 0
    b[:, 0] = 7.0
    keep_a, keep_b = np.arange(0, 40, 2), np.arange(30)
    rows = np.concatenate([a[keep_a], b[keep_b]])
    std = rows.std(axis=0)
    z = np.where(std > 0, (rows - rows.mean(axis=0)) / np.where(std > 0, std, 1.0), 0.0)
    assert np.allclose(reduce_rows([(a, keep_a), (b, keep_b)], None), z)
    projection = random_projection(d, seed=1)
    assert projection is not None
    assert np.allclose(reduce_rows([(a, keep_a), (b, keep_b)], projection), z @ projection.toarray())
