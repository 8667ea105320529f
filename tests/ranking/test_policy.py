"""The selection policy on in-memory features: pick, reason, agreement, reliability, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import ConfigError, DataError
from transferkit.ranking.policy import (
    CandidateFeatures,
    parse_metrics,
    score_candidates,
    stratified_subsample,
)
from transferkit.selection.strategy import decide_strategy


def make_blobs(n_per_class: int, n_classes: int, dim: int, separation: float, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes ``separation`` apart with unit noise (as in conftest, importable here)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.standard_normal((n_classes, dim)) * separation / np.sqrt(2 * dim)
    return centres[y] + rng.standard_normal((y.size, dim)), y


def source_probabilities(X: np.ndarray, n_source: int = 12) -> np.ndarray:
    """A fixed random softmax classifier over the features, standing in for a source head."""
    W = np.random.default_rng(1234).standard_normal((X.shape[1], n_source)) * 3.0 / np.sqrt(X.shape[1])
    logits = X @ W
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True)


def _pool(n_per_class: int = 30, dim: int = 16, seed: int = 0) -> tuple[list[CandidateFeatures], np.ndarray]:
    """Three candidates over the same labels: strong, weak and no signal."""
    X_strong, y = make_blobs(n_per_class, 4, dim, separation=6.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    means = rng.standard_normal((4, dim))
    X_weak = means[y] * 0.25 + rng.standard_normal((y.size, dim))
    X_none = rng.standard_normal((y.size, dim))
    cands = [CandidateFeatures(name, X, source_probabilities(X))
             for name, X in (("strong", X_strong), ("weak", X_weak), ("none", X_none))]
    return cands, y


def test_pick_states_metric_knn_and_agreement() -> None:
    cands, y = _pool()
    table = score_candidates(cands, y, metrics=("logme", "hscore", "leep"))
    assert table.pick == "strong" and table.picked_by == "logme"
    assert table.order("logme") == ["strong", "weak", "none"]
    assert "knn" in table.metrics  # every table shows the kNN baseline
    assert "highest LogME" in table.reason and "kNN baseline agrees" in table.reason
    assert table.agreement["logme"]["hscore"] == pytest.approx(1.0)
    df = table.to_pandas()
    assert list(df["candidate"]) == ["strong", "weak", "none"]
    assert {"logme", "knn", "total_s", "num_features", "picked"} <= set(df.columns)
    assert df.loc[df["picked"], "candidate"].item() == "strong"
    text = str(table)
    assert "strong" in text and "Kendall" in text and "pick:" in text
    assert all(v is None or np.isfinite(v) for r in table.rows for v in r.scores.values())


def test_same_seed_same_table_and_order_free() -> None:
    cands, y = _pool()
    a = score_candidates(cands, y).to_dict()
    b = score_candidates(cands, y).to_dict()
    for d in (a, b):
        d.pop("seconds")
        for c in d["candidates"]:
            c.pop("score_seconds")
    assert a == b
    reordered = score_candidates(cands[::-1], y)
    assert reordered.pick == "strong"


def test_sfda_marked_unreliable_when_n_below_d_and_falls_back() -> None:
    X, y = make_blobs(6, 3, 64, separation=3.0)  # N = 18 < D = 64: SFDA saturates in-sample
    cands = [CandidateFeatures("a", X), CandidateFeatures("b", np.random.default_rng(0).standard_normal(X.shape))]
    table = score_candidates(cands, y, metrics=("sfda",), select="sfda")
    assert "sfda" in table.unreliable and "fewer samples than feature dimensions" in table.unreliable["sfda"]
    assert table.picked_by != "sfda"  # stated fallback
    assert "SFDA was asked for but" in table.reason


def test_no_source_head_leaves_leep_blank_not_nan() -> None:
    X, y = make_blobs(10, 3, 8, separation=4.0)
    table = score_candidates([CandidateFeatures("x", X), CandidateFeatures("y", X[:, ::-1].copy())], y,
                             metrics=("logme", "leep"))
    assert table.rows[0].scores["leep"] is None
    assert table.rows[0].missing["leep"] == "no source classifier head"


def test_bad_inputs_no_nan_no_crash() -> None:
    X, y = make_blobs(10, 3, 8, separation=4.0)
    # fewer than 2 classes: a clear error
    with pytest.raises(DataError, match="at least 2 classes"):
        score_candidates([CandidateFeatures("a", X)], np.zeros(len(y)))
    # a class with one sample: left out of scoring, with a note
    y1 = y.astype(object).copy()
    y1[0] = "lonely"
    table = score_candidates([CandidateFeatures("a", X), CandidateFeatures("b", X * 2)], y1)
    assert any("single sample" in n for n in table.notes)
    assert table.rows[0].n_samples == len(y) - 1
    # constant, NaN and D >> N features: finite scores or a reported error, never NaN
    const = np.ones_like(X)
    nan = X.copy()
    nan[3, 2] = np.nan
    wide = np.random.default_rng(0).standard_normal((len(y), 5000))
    wide[:, :8] += X * 3
    table = score_candidates(
        [CandidateFeatures("const", const), CandidateFeatures("nan", nan), CandidateFeatures("wide", wide)], y,
        metrics=("logme", "sfda", "hscore", "gbc"))
    assert table.row("nan").error and "NaN" in table.row("nan").error
    for r in table.rows:
        assert all(v is None or np.isfinite(v) for v in r.scores.values())
    assert table.pick in ("const", "wide")  # the broken candidate is never picked
    assert "nan: not scored" in str(table)


def test_metric_names_and_subsample() -> None:
    assert parse_metrics("LogME,h-score") == ["logme", "hscore", "knn"]
    with pytest.raises(ConfigError, match="Did you mean"):
        parse_metrics("logmee")
    labels = ["a"] * 90 + ["b"] * 9 + ["c"] * 1
    idx = stratified_subsample(labels, 20, seed=0)
    assert len(idx) in (20, 21)
    picked = [labels[i] for i in idx]
    assert picked.count("b") >= 2 and picked.count("c") == 1
    assert np.array_equal(idx, stratified_subsample(labels, 20, seed=0))
    assert len(stratified_subsample(labels, None)) == 100


def test_strategy_rule_is_stated() -> None:
    small = decide_strategy(60, 3)
    assert small.strategy == "probe" and "small data" in small.rule
    slow = decide_strategy(20_000, 10, budget_minutes=5)
    assert slow.strategy == "probe" and "budget" in slow.rule and "min" in slow.reason
    ok = decide_strategy(2_000, 10, budget_minutes=60, device="gpu")
    assert ok.strategy == "finetune"
    with pytest.raises(ConfigError):
        decide_strategy(2_000, 10, budget_minutes=0)
