"""The alignment maths: CORAL against its closed form, standardisation, recovery of a known shift."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.linear_model import LogisticRegression
from tests.adapt.conftest import shifted_problem

from transferkit.adapt import (
    MIN_BATCH_INPUTS,
    AlignModule,
    auto_outcome,
    batch_standardizer,
    fit_alignment,
    fit_coral,
    fit_shrunk_standardize,
    fit_standardize,
    resolve_method,
    shrunk_covariance,
)
from transferkit.errors import ConfigError, DataError


def _correlated(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mixing = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mixing + shift


def test_coral_matches_closed_form_on_small_matrices() -> None:
    rng = np.random.default_rng(0)
    source, target = _correlated(rng, 400, 4), _correlated(rng, 300, 4, shift=3.0)
    got = fit_coral(source, target, shrink=False)
    cs, ct = np.cov(source, rowvar=False, bias=True), np.cov(target, rowvar=False, bias=True)
    expected = np.real(scipy.linalg.inv(scipy.linalg.sqrtm(ct)) @ scipy.linalg.sqrtm(cs))
    assert got.matrix is not None
    np.testing.assert_allclose(got.matrix, expected, rtol=1e-6, atol=1e-8)
    moved = got.apply(target).astype(np.float64)
    np.testing.assert_allclose(np.cov(moved, rowvar=False, bias=True), cs, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(moved.mean(axis=0), source.mean(axis=0), atol=1e-3)


def test_standardize_gives_target_the_source_moments() -> None:
    rng = np.random.default_rng(1)
    source = rng.normal(2.0, 3.0, (200, 6))
    target = rng.normal(-1.0, 0.5, (150, 6))
    moved = fit_standardize(source, target).apply(target)
    np.testing.assert_allclose(moved.mean(axis=0), source.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(moved.std(axis=0), source.std(axis=0), rtol=1e-4)


def test_shrinkage_keeps_coral_stable_with_fewer_inputs_than_dimensions() -> None:
    rng = np.random.default_rng(2)
    source, target = _correlated(rng, 300, 64), _correlated(rng, 20, 64, shift=1.0)
    cov, shrinkage = shrunk_covariance(target)
    assert 0 < shrinkage <= 1
    assert np.linalg.eigvalsh(cov).min() > 0  # positive definite although n < d
    np.testing.assert_allclose(np.diag(cov), target.var(axis=0), rtol=1e-6)  # each variance kept
    moved = fit_coral(source, target).apply(target)
    assert np.isfinite(moved).all()
    assert np.abs(moved).max() < 100 * np.abs(source).max()


@pytest.mark.parametrize("method", ["standardize", "coral", "auto"])
def test_alignment_recovers_accuracy_under_a_known_shift(method: str) -> None:
    xs, ys, xt, yt = shifted_problem(3)
    clf = LogisticRegression(max_iter=1000).fit(xs, ys)
    plain = clf.score(xt[300:], yt[300:])
    source_level = clf.score(*shifted_problem(4)[:2])
    alignment = fit_alignment(xs, xt[:300], method)  # fitted on one half of the target, scored on the other
    assert alignment is not None
    aligned = clf.score(alignment.apply(xt[300:]), yt[300:])
    assert plain < 0.6 < source_level
    assert aligned > plain + 0.25
    assert aligned > source_level - 0.1


def test_module_round_trips_through_tensors_and_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    alignment = fit_coral(rng.normal(size=(50, 5)), rng.normal(size=(40, 5)) * 2)
    module = AlignModule.from_tensors(alignment.tensors())
    assert module is not None and module.dim == 5
    x = rng.normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(),
                               (x - alignment.mean_in) @ alignment.matrix + alignment.mean_out, rtol=1e-5, atol=1e-5)
    assert AlignModule.from_tensors({}) is None


def test_none_and_unknown_methods() -> None:
    rng = np.random.default_rng(6)
    assert fit_alignment(rng.normal(size=(20, 3)), rng.normal(size=(20, 3)), "none") is None
    assert resolve_method("auto") == "auto"
    with pytest.raises(ConfigError, match="standardize"):
        resolve_method("mmd")


def test_too_small_or_mismatched_target_is_an_error() -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(DataError, match="at least 10"):
        fit_coral(rng.normal(size=(50, 3)), rng.normal(size=(3, 3)))
    with pytest.raises(DataError, match="same backbone"):
        fit_standardize(rng.normal(size=(50, 3)), rng.normal(size=(30, 4)))


def test_batch_standardizer_refuses_small_batches() -> None:
    rng = np.random.default_rng(8)
    with pytest.raises(ConfigError, match=f"at least {MIN_BATCH_INPUTS}"):
        batch_standardizer(rng.normal(size=(MIN_BATCH_INPUTS - 1, 4)), np.zeros(4), np.ones(4))
    batch = rng.normal(5.0, 2.0, (64, 4))
    moved = batch_standardizer(batch, np.zeros(4), np.ones(4)).apply(batch)
    np.testing.assert_allclose(moved.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(moved.std(axis=0), 1, rtol=1e-4)


def test_blocks_of_a_concatenation_are_aligned_each_on_its_own() -> None:
    from transferkit.adapt import MAX_CORAL_DIM, BlockAlignment, alignment_from_tensors

    rng = np.random.default_rng(10)
    source = rng.normal(size=(60, 3 + MAX_CORAL_DIM + 1)).astype(np.float32)
    target = (rng.normal(size=(40, source.shape[1])) * 2 + 1).astype(np.float32)
    alignment = fit_alignment(source, target, "coral", blocks=[3, MAX_CORAL_DIM + 1])
    assert isinstance(alignment, BlockAlignment)
    assert [p.method for p in alignment.parts] == ["coral", "standardize"]  # too wide for a [d, d] matrix
    module = alignment.module()
    tensors = {f"align.{k}": v for k, v in module.state_dict().items()}
    restored = alignment_from_tensors(tensors)
    assert restored is not None and restored.dim == source.shape[1]
    x = torch.from_numpy(target[:5])
    np.testing.assert_allclose(restored(x).numpy(), alignment.apply(target[:5]), rtol=1e-5, atol=1e-5)


def test_shrinkage_intensity_is_ledoit_wolf() -> None:
    from sklearn.covariance import ledoit_wolf

    from transferkit.adapt.align import _ledoit_wolf

    rng = np.random.default_rng(11)
    x = _correlated(rng, 30, 12)
    x -= x.mean(axis=0)
    expected, intensity = ledoit_wolf(x, assume_centered=True)
    got, got_intensity = _ledoit_wolf(x)
    assert got_intensity == pytest.approx(intensity, rel=1e-9)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_auto_moves_nothing_where_the_target_differs_only_by_sampling_noise() -> None:
    """Two random draws of one domain (the no-shift control): plain standardisation moves the target by
    its statistics' noise; auto's James-Stein factors shrink that to (almost) nothing."""
    rng = np.random.default_rng(12)
    mixing = rng.normal(size=(200, 200)) / np.sqrt(200)
    source = rng.gamma(1.0, size=(800, 200)) @ mixing
    target = rng.gamma(1.0, size=(60, 200)) @ mixing
    auto = fit_shrunk_standardize(source, target)
    assert auto.info is not None
    assert auto.info["mean_shrinkage"] < 0.2 and auto.info["spread_shrinkage"] < 0.2, auto.info
    plain = fit_standardize(source, target)
    moved_plain = np.abs(plain.apply(target) - target).mean()
    moved_auto = np.abs(auto.apply(target) - target).mean()
    assert moved_auto < 0.25 * moved_plain


def test_auto_is_plain_standardisation_under_a_strong_shift() -> None:
    rng = np.random.default_rng(13)
    source = rng.normal(0.0, 1.0, (500, 50))
    target = rng.normal(3.0, 2.5, (80, 50))
    auto = fit_shrunk_standardize(source, target)
    assert auto.info is not None and auto.info["mean_shrinkage"] > 0.95 and auto.info["spread_shrinkage"] > 0.9
    moved = auto.apply(target)
    np.testing.assert_allclose(moved.mean(axis=0), source.mean(axis=0), atol=0.25)
    assert auto_outcome(auto)[0]


def test_auto_on_identical_domains_aligns_nothing_and_says_why() -> None:
    rng = np.random.default_rng(14)
    x = rng.normal(size=(100, 8))
    alignment = fit_alignment(x, x.copy(), "auto", blocks=[3, 5])
    assert alignment is not None
    moved, why = auto_outcome(alignment)
    assert not moved and "nothing is aligned" in why
    np.testing.assert_allclose(alignment.apply(x), x, atol=1e-5)


@pytest.mark.parametrize("method", ["standardize", "coral"])
def test_a_dimension_constant_in_the_source_gets_its_constant(method: str) -> None:
    """A feature constant in the training data but varying a little in the target must not be spread out
    (its spread floor would scale the target's variation by hundreds)."""
    rng = np.random.default_rng(15)
    source = rng.normal(size=(200, 6))
    source[:, 2] = 0.0
    target = rng.normal(1.0, 2.0, (60, 6))
    target[:, 2] = rng.normal(0.0, 0.002, 60)
    moved = fit_alignment(source, target, method).apply(target)
    np.testing.assert_allclose(moved[:, 2], 0.0, atol=1e-5)
    assert np.abs(moved).max() < 20


def test_auto_shrinks_the_mean_and_log_spread_shifts_by_their_james_stein_factors() -> None:
    """auto's map against its formula written out here (scipy's kurtosis for the log spread's noise), on
    heavy-tailed features with a dimension constant in the target (left as it is)."""
    from scipy.stats import kurtosis

    rng = np.random.default_rng(16)
    source = rng.standard_t(4, size=(400, 30))
    target = 1.5 * rng.standard_t(4, size=(70, 30)) + 0.4
    target[:, 7] = 2.0
    auto = fit_shrunk_standardize(source, target)
    live = np.ones(30, bool)
    live[7] = False
    s, t = source[:, live], target[:, live]
    ns, nt, d = len(s), len(t), int(live.sum())
    shift = t.mean(axis=0) - s.mean(axis=0)
    z_mean = shift / np.sqrt(t.var(axis=0) / nt + s.var(axis=0) / ns)
    log_ratio = np.log(t.std(axis=0) / s.std(axis=0))
    noise = (np.maximum(kurtosis(t, fisher=False) - 1, 1e-3) / (4 * nt)
             + np.maximum(kurtosis(s, fisher=False) - 1, 1e-3) / (4 * ns))
    z_spread = log_ratio / np.sqrt(noise)
    lam_mean = max(0.0, 1 - (d - 2) / float(z_mean @ z_mean))
    lam_spread = max(0.0, 1 - (d - 2) / float(z_spread @ z_spread))
    assert 0.1 < lam_spread < 0.99 and 0.1 < lam_mean < 0.99  # both factors shrink: a test of each
    assert auto.info is not None
    assert auto.info["mean_shrinkage"] == round(lam_mean, 4) and auto.info["spread_shrinkage"] == round(lam_spread, 4)
    assert auto.scale is not None
    np.testing.assert_allclose(auto.scale[live], 1 / np.exp(lam_spread * log_ratio), rtol=1e-12)
    np.testing.assert_allclose(auto.mean_in[live], s.mean(axis=0) + lam_mean * shift, rtol=1e-12)
    assert auto.scale[7] == 1.0 and auto.mean_in[7] == pytest.approx(source[:, 7].mean())
