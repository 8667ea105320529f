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
def test_rows_train_the_same_head_as_their_copy_without_copying_them(text: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    import transferkit.heads.train as training_module
    from transferkit.heads import HeadTraining, Rows, train_probe

    monkeypatch.setattr(training_module, "_BLOCK_VALUES", 1 << 15)  # block temporaries small beside the rows
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


@pytest.mark.parametrize("density", [0.02, 0.6])
def test_disposable_rows_train_the_same_linear_head_standardised_in_place(density: float,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows a caller gives up (`Rows.disposable`): a mostly-zero matrix (hashed n-grams) gets its standardised
    rows written over it instead of a copy beside it — the same head, C grid and validation probabilities bit for
    bit; a dense one is left as it is (the head then copies, as without `disposable`)."""
    import tracemalloc

    import transferkit.heads.train as training_module
    from transferkit.heads import HeadTraining, Rows, train_probe

    # a few blocks, and their temporaries small beside the rows; written over in other blocks than the copy's
    monkeypatch.setattr(training_module, "_BLOCK_VALUES", 1 << 15)
    monkeypatch.setattr(training_module, "_WRITE_BLOCK_VALUES", 1 << 13)
    rng = np.random.default_rng(4)
    y_all = np.repeat(np.arange(3), 60)[rng.permutation(180)]
    values = np.where(rng.random((180, 1500)) < density, rng.random((180, 1500)), 0).astype(np.float32)
    values[:, :3] += 2 * np.eye(3, dtype=np.float32)[y_all]  # a learnable signal
    tr = rng.permutation(180)[:130]
    va = np.setdiff1d(np.arange(180), tr)[::-1].copy()
    training = HeadTraining(c_grid=(0.1, 1.0))

    def fit(disposable: bool) -> tuple[object, int, np.ndarray]:
        given = values.copy()
        tracemalloc.start()
        fitted = train_probe(parse_head("linear"), Rows(given, tr, disposable), y_all[tr], Rows(given, va, disposable),
                             y_all[va], 3, seed=0, training=training)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return fitted, peak, given

    fit(True)  # first-call allocations (lazy imports, caches) out of the way
    (kept, kept_peak, untouched), (given_up, given_peak, written) = fit(False), fit(True)
    for a, b in zip(kept.head.state_dict().values(), given_up.head.state_dict().values(), strict=True):  # type: ignore[attr-defined]
        assert torch.equal(a, b)
    assert kept.choice == given_up.choice  # type: ignore[attr-defined]
    assert np.array_equal(kept.val_proba, given_up.val_proba)  # type: ignore[attr-defined]
    assert np.array_equal(untouched, values)  # not disposable: never written
    if density < 0.25:  # written over, and no standardised copy of the rows beside the matrix
        assert not np.array_equal(written, values)
        assert given_peak < kept_peak - 0.7 * values.nbytes
    else:  # too dense for an exact sparse copy to pay: left as it is
        assert np.array_equal(written, values)


def test_linear_probe_keeps_its_grids_heldout_validation_probabilities() -> None:
    """`val_proba`: the chosen C's model fitted on the training rows only (the head was then refitted on train +
    validation) — the same probabilities as a direct refit at that C, rows summing to 1, an absent class at 0;
    a torch head keeps none."""
    from sklearn.linear_model import LogisticRegression

    from transferkit.adapt.dev import heldout_proba
    from transferkit.heads import HeadTraining, train_probe

    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 40)
    X = (rng.normal(size=(120, 10)) * 2 + 1.5 * np.eye(10)[y]).astype(np.float32)
    tr, va = np.arange(0, 120, 2), np.arange(1, 120, 2)
    probe = train_probe(parse_head("linear"), X[tr], y[tr], X[va], y[va], 4, class_weight=None, seed=0)
    assert probe.val_proba is not None and probe.val_proba.shape == (60, 4)
    assert np.allclose(probe.val_proba.sum(1), 1) and not probe.val_proba[:, 3].any()  # class 3: not in training
    c = float(probe.choice["C"])
    # its accuracy is the one the grid recorded at C (it is what chose C)
    assert abs((probe.val_proba.argmax(1) == y[va]).mean() - probe.choice["val_accuracy_by_C"][str(c)]) < 1e-12
    mean, std = X[tr].astype(np.float64).mean(0), X[tr].astype(np.float64).std(0) + 1e-6
    direct = LogisticRegression(C=c, max_iter=1000).fit((X[tr] - mean) / std, y[tr]).predict_proba((X[va] - mean) / std)
    assert np.abs(probe.val_proba[:, :3] - direct).max() < 1e-3
    # DEV's former refit (float64, unweighted, one block) reads the same here
    assert np.abs(probe.val_proba - heldout_proba(X[tr].astype(np.float64), y[tr], X[va].astype(np.float64), 4,
                                                  c=c)).max() < 1e-3
    # what the refitted head says on validation is not that: it has seen those rows
    assert np.abs(probe.proba(X[va]) - probe.val_proba).max() > 1e-3
    short = HeadTraining(epochs=2)
    assert train_probe(parse_head("mlp:8"), X[tr], y[tr], X[va], y[va], 4, class_weight=None, seed=0,
                       training=short).val_proba is None
    assert train_probe(parse_head("linear"), X, y, X[:0], y[:0], 4, class_weight=None, seed=0).val_proba is None
