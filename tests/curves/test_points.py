"""One point of the curve (`curves.points`): a probe fitted on the point's rows only, its metrics, and the
fine-tuning budget that decides which points are run."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.curves.points import Extracted, FinetuneBudget, metrics, probe_point


def _features(seed: int = 0) -> tuple[Extracted, np.ndarray]:
    """60 rows of 3 separable classes in 8 dimensions."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 20)
    values = (np.eye(3, 8)[y] * 4 + rng.normal(0, 1, (60, 8))).astype(np.float32)
    return Extracted("x", values, np.ones(60, bool), {}, 0.0, 0, "fp32"), y


def test_a_probe_point_learns_from_its_own_rows_only() -> None:
    feats, y = _features()
    rows = np.random.default_rng(1).permutation(60).tolist()
    fit, val, test = rows[:24], rows[24:36], rows[36:]
    predicted, choice = probe_point(feats, y, fit, val, test, 3, seed=0)
    assert predicted.shape == (24,) and (predicted == y[test]).mean() >= 0.9
    assert choice  # what was chosen on the point's validation rows is said
    again, _ = probe_point(feats, y, fit, val, test, 3, seed=0)
    np.testing.assert_array_equal(again, predicted)  # same rows, same seed: same point
    # the fit rows' labels are all the probe learns from: scrambled, it no longer finds the classes
    scrambled = y.copy()
    scrambled[fit + val] = np.random.default_rng(2).permutation(scrambled[fit + val])
    noise, _ = probe_point(feats, scrambled, fit, val, test, 3, seed=0)
    assert (noise == y[test]).mean() < 0.8


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # the unreadable one
def test_a_points_metrics_count_an_unreadable_prediction_as_wrong() -> None:
    m = metrics(["a", "b"], np.array([0, 0, 1, 1]), np.array([0, -1, 1, 1]))
    assert m["accuracy"] == pytest.approx(0.75) and m["balanced_accuracy"] == pytest.approx(0.75)
    assert set(m) == {"accuracy", "balanced_accuracy", "macro_f1"} and 0 < m["macro_f1"] < 1


def test_the_budget_learns_the_rate_and_refuses_what_would_overrun_it() -> None:
    budget = FinetuneBudget(minutes=1.0, epochs=2, device="cpu")
    assert budget.estimate(30) == pytest.approx(2 * 30 / 15.0)  # the assumed CPU rate before any point ran
    assert budget.fits(450) and not budget.fits(451)  # 2 × 450 images at 15/s: 60 s, the whole minute
    budget.record(30, seconds=12.0)  # measured: 60 images in 12 s, 5 a second
    assert budget.rate() == pytest.approx(5.0)
    assert budget.fits(120) and not budget.fits(121)  # 12 s spent + 2 × 120 / 5 = 60 s
