"""The fixed reduction the shift diagnostic and auto's shift test read wide features through.

Features wider than `REDUCED_DIM` are standardised with both domains' pooled statistics and seen through a
seeded very sparse random projection (Li, Hastie & Church, KDD 2006): the domain classifier and the
two-sample test then cost the same on 16,768 hashed n-gram dimensions as on 256.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_array

#: wider features are seen through a seeded random projection to this many dimensions
REDUCED_DIM = 256


def random_projection(width: int, *, seed: int = 0, dims: int = REDUCED_DIM) -> csr_array | None:
    """The seeded very sparse random projection [width, dims] of the reduction (a scipy CSR matrix), or None
    when the features are no wider than `dims` (they are read as they are).

    Li, Hastie & Church (KDD 2006): entries ±sqrt(s / dims) with probability 1/(2s) each, 0 otherwise,
    s = sqrt(width) — an unbiased Johnson–Lindenstrauss projection with about width·dims/s non-zeros,
    so projecting n rows costs n·width·dims/s multiplications (on 16,768-d: 130x fewer than a dense one).

    The matrix depends on (width, seed, dims) alone and one fit with a target draws it three times (the
    shift test, the domain classifier, the map): it is drawn once and shared, so it is read-only."""
    return _drawn_projection(width, seed, dims) if width > dims else None


@lru_cache(maxsize=4)
def _drawn_projection(width: int, seed: int, dims: int) -> csr_array:
    from scipy import sparse

    rng = np.random.default_rng([seed, width, dims])
    s = float(np.sqrt(width))
    hit = rng.random((width, dims), dtype=np.float32) < 1.0 / s
    rows, cols = np.nonzero(hit)
    signs = np.where(rng.random(len(rows)) < 0.5, -1.0, 1.0) * np.sqrt(s / dims)
    matrix = sparse.csr_array((signs, (rows, cols)), shape=(width, dims))
    for part in (matrix.data, matrix.indices, matrix.indptr):
        part.flags.writeable = False
    return matrix


def inverse_spread(std: np.ndarray) -> np.ndarray:
    """1 / std per dimension, 0 for a dimension constant next to the widest spread (it is left at 0)."""
    live = std > 1e-9 * max(float(std.max(initial=0.0)), 1e-12)
    return np.where(live, 1.0 / np.where(live, std, 1.0), 0.0)


def standardize_project(rows: Sequence[np.ndarray], mean: np.ndarray, inverse: np.ndarray,
                        projection: csr_array | None) -> list[np.ndarray]:
    """Each of `rows` standardised by (mean, inverse spread) and then projected, float64; the standardisation
    is folded into the projection's matrix, so no standardised copy of wide rows is made."""
    if projection is None:
        return [(np.asarray(r, np.float64) - mean) * inverse for r in rows]
    from scipy import sparse

    matrix = sparse.diags_array(inverse) @ projection
    offset = mean @ matrix
    return [np.asarray(r @ matrix, np.float64) - offset for r in rows]


def reduce_rows(parts: Sequence[tuple[np.ndarray, np.ndarray]], projection: csr_array | None) -> np.ndarray:
    """The reduction of the rows `keep` of each (array [n_i, width], keep) of `parts`, pooled: standardised
    with the kept rows' pooled mean and spread (a constant dimension left at 0), then projected; float64
    [sum of kept rows, dims] (dims = width without a projection)."""
    rows = [_rows(np.asarray(a), keep) for a, keep in parts]
    n = sum(len(r) for r in rows)
    mean = sum(r.sum(axis=0, dtype=np.float64) for r in rows) / n
    square = sum(np.einsum("ij,ij->j", r, r, dtype=np.float64) for r in rows) / n
    std = np.sqrt(np.maximum(square - mean**2, 0.0))
    return np.concatenate(standardize_project(rows, mean, inverse_spread(std), projection))


def _rows(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """values[keep], without the copy when `keep` is every row in order (a domain under the cap)."""
    if len(keep) == len(values) and np.array_equal(keep, np.arange(len(values))):
        return np.ascontiguousarray(values)
    return values[keep]
