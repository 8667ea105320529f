"""Gated fusion of a table's column blocks (`heads.fusion`): each block scaled as a whole. The gated head's
training is exercised through the table estimator (tests/estimators/test_tabular.py)."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.heads.fusion import block_scales


def test_each_block_is_scaled_as_a_whole() -> None:
    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(0, 10, (50, 4)), rng.normal(0, 0.1, (50, 2)), np.ones((50, 1))])
    scales = block_scales(X, [4, 2, 1])
    assert len(set(scales[:4].tolist())) == 1 and len(set(scales[4:6].tolist())) == 1  # one scale per block
    assert scales[0] == pytest.approx(10 * np.sqrt(4), rel=0.2)
    assert scales[4] == pytest.approx(0.1 * np.sqrt(2), rel=0.3)
    assert scales[6] == 1.0  # a constant block is left as it is, never divided by zero
    z = (X[:, :6] - X[:, :6].mean(0)) / scales[:6]
    assert np.mean((z[:, :4] ** 2).sum(1)) == pytest.approx(1, rel=0.2)  # the block's expected squared norm is 1
