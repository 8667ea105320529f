"""The target's class proportions (`adapt.priors`) and the source re-weighted to them: under label shift,
matching the target's moments to the re-weighted source moves nothing that should stay, where matching
them to the source as it is moves classes into each other."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from transferkit.adapt import fit_shrunk_standardize
from transferkit.adapt.priors import class_prior_weights, em_priors, total_variation


def label_shifted(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Three Gaussian classes; the target draws them 70/20/10 where the source drew them evenly (no other
    shift)."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0, 0.0], [2.5, 0.0, 1.0, 0.0], [0.0, 2.5, 0.0, 1.0]])

    def draw(proportions: list[float], n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(3, size=n, p=proportions)
        return means[y] + rng.normal(size=(n, 4)), y

    xs, ys = draw([1 / 3] * 3, 1500)
    xt, yt = draw([0.7, 0.2, 0.1], 600)
    return xs, ys, xt, yt


def test_em_recovers_the_targets_class_proportions() -> None:
    xs, ys, xt, yt = label_shifted()
    head = LogisticRegression().fit(xs, ys)
    prior = em_priors(head.predict_proba(xt), head.predict_proba(xs).mean(0))
    truth = np.bincount(yt, minlength=3) / len(yt)
    assert total_variation(prior, truth) < 0.05, (prior, truth)
    assert total_variation(head.predict_proba(xt).mean(0), truth) > total_variation(prior, truth)  # EM did work


def test_weighted_source_moments_keep_a_label_shifted_target_in_place() -> None:
    xs, ys, xt, yt = label_shifted()
    head = LogisticRegression().fit(xs, ys)
    weights = class_prior_weights(ys, em_priors(head.predict_proba(xt), head.predict_proba(xs).mean(0)))
    plain, weighted = fit_shrunk_standardize(xs, xt), fit_shrunk_standardize(xs, xt, weights)
    accuracy = {name: float((head.predict(x) == yt).mean())
                for name, x in (("none", xt), ("plain", plain.apply(xt)), ("weighted", weighted.apply(xt)))}
    assert accuracy["weighted"] >= accuracy["none"] - 0.01 > accuracy["plain"], accuracy
    # the re-weighted source's mean is the target's class mix of the source's class means
    np.testing.assert_allclose(weighted.mean_out, np.average(xs, axis=0, weights=weights), rtol=1e-9, atol=1e-9)


def test_uniform_weights_are_no_weights() -> None:
    xs, _, xt, _ = label_shifted(1)
    a, b = fit_shrunk_standardize(xs, xt), fit_shrunk_standardize(xs, xt, np.full(len(xs), 2.0))
    np.testing.assert_allclose(a.mean_out, b.mean_out, rtol=1e-12)
    np.testing.assert_allclose(a.scale, b.scale, rtol=1e-9)
    np.testing.assert_allclose(a.mean_in, b.mean_in, rtol=1e-9, atol=1e-12)


def test_a_class_weighted_to_almost_nothing_raises_no_overflow() -> None:
    """EM can put a class at ~1e-200: the dimensions that only its inputs move then have spreads of ~1e-100,
    constant for the alignment, whose kurtosis once overflowed (a RuntimeWarning on every such fit)."""
    import warnings

    xs, ys, xt, _ = label_shifted()
    xs = np.hstack([xs, np.where(ys == 2, 1e3, 0.0)[:, None]])  # a dimension only class 2 moves
    xt = np.hstack([xt, np.zeros((len(xt), 1))])
    weights = class_prior_weights(ys, np.array([0.5, 0.5, 1e-200]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aligned = fit_shrunk_standardize(xs, xt, weights).apply(xt)
    assert np.isfinite(aligned).all()
