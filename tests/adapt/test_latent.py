"""Latent target domains (`adapt.latent`): a target of two domains, each shifted its own way, is aligned one
discovered domain at a time; the choice against one alignment for the whole target is the head's
information maximization; the module is what the numpy maths says, survives the bundle's tensors, and
exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from transferkit.adapt import MIN_TARGET_INPUTS, alignment_from_tensors, fit_alignment
from transferkit.adapt.latent import (
    LatentAlignModule,
    fit_latent_alignment,
    information_gain,
    information_maximization,
)


def two_domain_problem(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Two Gaussian classes apart along dimension 0; the target is two domains (like two new speakers),
    one moved by +3 along every dimension and spread twice as wide, the other moved by -3 (class-independent)."""
    rng = np.random.default_rng(seed)
    d = 8

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, d))
        x[:, 0] += 3.0 * y
        return x, y

    xs, ys = draw(600)
    xa, ya = draw(300)
    xb, yb = draw(300)
    return xs, ys, np.vstack([xa * 2.0 + 3.0, xb - 3.0]), np.concatenate([ya, yb]), np.repeat([0, 1], 300)


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, ...]:
    return two_domain_problem()


def accuracy(head: LogisticRegression, x: np.ndarray, y: np.ndarray) -> float:
    return float((head.predict(x) == y).mean())


def test_two_target_domains_are_found_and_each_aligned(problem: tuple[np.ndarray, ...]) -> None:
    xs, ys, xt, yt, domain = problem
    head = LogisticRegression().fit(xs, ys)
    whole = fit_alignment(xs, xt, "auto")
    latent = fit_latent_alignment(xs, xt, seed=0)
    assert whole is not None and latent is not None
    assert latent.info["domains"] == 2
    found = latent.module().domains(torch.from_numpy(xt.astype(np.float32))).numpy()
    assert max((found == domain).mean(), (found != domain).mean()) > 0.99  # the two domains, whatever their order
    plain, one, each = (accuracy(head, x, yt) for x in (xt, whole.apply(xt), latent.apply(xt)))
    assert each > 0.9 > one and each > plain, (plain, one, each)
    # the rule that keeps it: the head's predictions carry significantly more information with the domains
    # aligned each
    assert information_gain(head.predict_proba(latent.apply(xt)), head.predict_proba(whole.apply(xt)))[1] > 0


def test_one_domain_target_is_better_aligned_whole() -> None:
    """A target that is one domain splits into clusters too (here by class); aligning those moves the classes
    into each other, and the information rule sees it."""
    from tests.adapt.conftest import shifted_problem

    xs, ys, xt, yt = shifted_problem(0)
    head = LogisticRegression().fit(xs, ys)
    whole = fit_alignment(xs, xt, "standardize")
    latent = fit_latent_alignment(xs, xt, seed=0)
    assert whole is not None and latent is not None
    assert information_maximization(head.predict_proba(whole.apply(xt))) > \
        information_maximization(head.predict_proba(latent.apply(xt)))
    assert information_gain(head.predict_proba(latent.apply(xt)), head.predict_proba(whole.apply(xt)))[1] < 0
    assert accuracy(head, whole.apply(xt), yt) > accuracy(head, latent.apply(xt), yt)


def test_an_information_gain_within_sampling_noise_is_not_significant() -> None:
    """Two sets of predictions drawn alike (the same Dirichlet): one has a little more information than the
    other by chance, and the bootstrap's lower bound is below zero; a real gain (sharper predictions) is above,
    and its point estimate is `information_maximization`'s difference. The same seed gives the same bound."""
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(5), size=(2, 300))
    gain, lower = information_gain(a, b, seed=0)
    assert gain == pytest.approx(information_maximization(a) - information_maximization(b))
    assert lower < 0  # noise: not significant, whichever way the estimate fell
    assert information_gain(a, b, seed=0) == (gain, lower)
    sharp = rng.dirichlet(np.full(5, 0.1), size=300)
    assert information_gain(sharp, b, seed=0)[1] > 0


def test_the_bootstrap_bound_holds_for_many_inputs_in_bounded_memory() -> None:
    """Resamples are drawn a few at a time (~2 M counts): 5,000 inputs give the same kind of bound."""
    rng = np.random.default_rng(1)
    a = rng.dirichlet(np.full(3, 0.2), size=5000)
    gain, lower = information_gain(a, a, seed=0)
    assert gain == 0 and lower == pytest.approx(0, abs=1e-12)


def test_module_matches_the_maths_and_survives_the_bundles_tensors(problem: tuple[np.ndarray, ...]) -> None:
    xs, _, xt, _, _ = problem
    latent = fit_latent_alignment(xs, xt, seed=0)
    assert latent is not None
    z = xt @ latent.project - latent.offset
    c = ((z[:, None, :] - latent.centroids[None]) ** 2).sum(2).argmin(1)
    expected = xt * latent.scale[c] + latent.shift[c]
    np.testing.assert_allclose(latent.apply(xt), expected, rtol=1e-4, atol=1e-4)
    module = latent.module()
    read = alignment_from_tensors({f"align.{k}": v for k, v in module.state_dict().items()})
    assert isinstance(read, LatentAlignModule)
    x = torch.from_numpy(xt[:50].astype(np.float32))
    torch.testing.assert_close(read(x), module(x))


def test_latent_alignment_exports_to_onnx(problem: tuple[np.ndarray, ...], tmp_path) -> None:
    import onnxruntime as ort

    xs, _, xt, _, _ = problem
    latent = fit_latent_alignment(xs, xt, seed=0)
    assert latent is not None
    module = latent.module().eval()
    x = torch.from_numpy(xt[:40].astype(np.float32))
    path = tmp_path / "latent.onnx"
    torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, module(x).numpy(), atol=1e-5)


def test_same_seed_same_domains_and_a_small_target_has_none(problem: tuple[np.ndarray, ...]) -> None:
    xs, _, xt, _, _ = problem
    a, b = fit_latent_alignment(xs, xt, seed=3), fit_latent_alignment(xs, xt, seed=3)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.scale, b.scale)
    assert fit_latent_alignment(xs, xt[: 2 * MIN_TARGET_INPUTS - 1]) is None


def test_wide_features_are_clustered_through_the_projection() -> None:
    """Wider than the reduction's 256 dimensions (hashed n-grams): the seeded random projection is folded into
    the one [d, p] map the module carries."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(200, 400))
    xt = np.vstack([rng.normal(size=(60, 400)) + 2.0, rng.normal(size=(60, 400)) - 2.0])
    latent = fit_latent_alignment(xs, xt, seed=0)
    assert latent is not None and latent.project.shape[0] == 400 and latent.info["domains"] == 2
    assert np.abs(latent.apply(xt).mean(0)).max() < 0.5  # each domain moved onto the source's mean (0)
