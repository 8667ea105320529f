"""The reduction wide features are read through: a seeded sparse projection after pooled standardisation."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from transferkit.adapt.projection import REDUCED_DIM, random_projection, reduce_rows
from transferkit.runtime import threads_limited


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


def test_the_projection_is_drawn_once_and_read_only() -> None:
    """One fit reads the projection three times (shift test, domain classifier, map): one draw, shared,
    which no caller can change under the others."""
    p = random_projection(3 * REDUCED_DIM, seed=4)
    assert p is not None and p is random_projection(3 * REDUCED_DIM, seed=4)
    assert p is not random_projection(3 * REDUCED_DIM, seed=5)
    with pytest.raises(ValueError, match="read-only"):
        p.data[0] = 0.0


def test_reduce_rows_of_a_whole_domain_is_the_same_as_of_its_rows_picked() -> None:
    """A domain under the cap is read as it is (no copy of its rows): to the bit what picking them gives."""
    rng = np.random.default_rng(2)
    d = 2 * REDUCED_DIM
    a, b = rng.normal(size=(30, d)), rng.normal(1.0, 2.0, size=(20, d))
    projection = random_projection(d, seed=0)
    whole = reduce_rows([(a, np.arange(30)), (b, np.arange(20))], projection)
    longer = np.concatenate([a, rng.normal(size=(1, d))])  # one more row, left out: the rows are picked
    assert np.array_equal(reduce_rows([(longer, np.arange(30)), (b, np.arange(20))], projection), whole)
    column_major = np.asfortranarray(a)
    assert np.array_equal(reduce_rows([(column_major, np.arange(30)), (b, np.arange(20))], projection), whole)


def test_threads_limited_limits_blas_and_restores_it() -> None:
    before = [i["num_threads"] for i in threadpool_info()]
    with threads_limited(1):
        assert all(i["num_threads"] == 1 for i in threadpool_info())
    assert [i["num_threads"] for i in threadpool_info()] == before
