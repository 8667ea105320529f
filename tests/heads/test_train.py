"""Training a head (`heads.train`): each spec learns separable features, two classes work, class weights only
when imbalanced, the same seed gives the same MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.errors import ConfigError
from transferkit.heads import class_weights, fit_head, parse_head


@pytest.mark.parametrize("text", ["linear", "mlp", "mlp:32", "dense:32:relu, dropout:0.1, dense:N:softmax"])
def test_each_head_learns_separable_features(text: str) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    X = (rng.normal(size=(180, 16)) + 5 * np.eye(16)[y]).astype(np.float32)
    order = rng.permutation(180)
    X, y = X[order], y[order]
    head, _ = fit_head(parse_head(text), X[:90], y[:90], X[90:120], y[90:120], 3, weights=None, seed=0)
    with torch.no_grad():
        acc = (head(torch.from_numpy(X[120:])).argmax(1).numpy() == y[120:]).mean()
    assert acc > 0.9  # held-out data, never seen in training or model selection


def test_linear_head_handles_two_classes() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    X = (rng.normal(size=(60, 4)) + 2.5 * y[:, None]).astype(np.float32)
    head, _ = fit_head(parse_head("linear"), X, y, X[:0], y[:0], 2, weights=None, seed=0)
    with torch.no_grad():
        assert (head(torch.from_numpy(X)).argmax(1).numpy() == y).mean() > 0.9


def test_class_weights_auto_only_when_imbalanced() -> None:
    assert class_weights(np.array([0, 0, 1, 1]), 2, "auto") is None
    w = class_weights(np.array([0] * 30 + [1] * 3), 2, "auto")
    assert w is not None and w[1] > w[0]
    with pytest.raises(ConfigError):
        class_weights(np.array([0, 1]), 2, "sometimes")


def test_mlp_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = rng.integers(0, 2, 60)
    a, _ = fit_head(parse_head("mlp:16"), X, y, X[:10], y[:10], 2, weights=None, seed=3)
    b, _ = fit_head(parse_head("mlp:16"), X, y, X[:10], y[:10], 2, weights=None, seed=3)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("text", ["linear", "mlp:8"])
def test_rows_train_the_same_head_as_their_copy_without_copying_them(text: str) -> None:
    import tracemalloc

    from transferkit.heads import HeadTraining, Rows, train_probe

    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 2000)).astype(np.float32)
    y_all = (values[:, 0] > 0).astype(np.int64)
    tr, va = np.arange(0, 300, 2)[::-1].copy(), np.arange(1, 300, 2)
    training = HeadTraining(c_grid=(0.1, 1.0), epochs=3)

    def fit(by_rows: bool) -> tuple[object, int]:
        tracemalloc.start()
        X, X_val = (Rows(values, tr), Rows(values, va)) if by_rows else (values[tr], values[va])
        fitted = train_probe(parse_head(text), X, y_all[tr], X_val, y_all[va], 2, seed=0, training=training)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return fitted, peak

    fit(True)  # first-call allocations (lazy imports, caches) out of the way
    (copied, copy_peak), (by_rows, rows_peak) = fit(False), fit(True)
    for a, b in zip(copied.head.state_dict().values(), by_rows.head.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert copied.choice == by_rows.choice
    if text == "linear":  # the rows are read a block at a time: no copy of them all beside the matrix
        assert rows_peak < copy_peak - 0.9 * values.nbytes
