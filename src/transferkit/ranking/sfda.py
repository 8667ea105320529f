r"""SFDA: Self-challenging Fisher Discriminant Analysis.

Paper: W. Shao, X. Zhao, Y. Ge, Z. Zhang, L. Yang, X. Wang, Y. Shan, P. Luo. "Not All Models Are
Equal: Predicting Model Transferability in a Self-challenging Fisher Space". ECCV 2022.

Idea: project the features into a Fisher space where classes are as separable as a linear map can
make them, then ask how confidently a Gaussian classifier there recovers the labels — after
making the hard examples harder, so that backbones are separated by how they handle confusable
classes rather than by the easy ones.

1. Regularised Fisher space. Within-class scatter S_w = Σ_c π_c Cov(x | c) (π_c class
   frequencies), shrunk towards a scaled identity with the paper's adaptive strength

       λ = max(exp(−5 σ_max(S_w)), 1e-10),     S̃_w = (1 − λ) S_w + λ (tr S_w / D) I,

   and U the generalised eigenvectors of (S_b, S̃_w). The class score of x is the Gaussian
   discriminant in that space, δ_c(x) = xᵀ U Uᵀ μ_c − ½ μ_cᵀ U Uᵀ μ_c + log π_c, and
   p(c | x) = softmax_c δ_c(x). The authors' code keeps all D eigenvectors, and those satisfy
   Uᵀ S̃_w U = I, so U Uᵀ = S̃_w⁻¹: the discriminant is computed here directly as regularised LDA
   with S̃_w⁻¹ (a Cholesky solve instead of a D × D generalised eigenproblem; same numbers).
2. Self-challenge (ConfMix). Each sample is pulled towards the mean of the *other* classes' means
   μ̄_{−y} in proportion to how unsure the first classifier is about it:

       x̃ = p̃ x + (1 − p̃) μ̄_{−y},     p̃ = softmax_c(p(c | x))_y

   (the probabilities are softened by a second softmax, as in the authors' code).
3. Refit step 1 on x̃ with the same λ; the score is the mean log-probability of the true class,

       SFDA = 1/N Σ_n log p(y_n | x̃_n)          (≤ 0, higher is better)

   computed with log-softmax, so it stays finite (the authors' code averages p instead of log p
   "in case of instability"; the log-domain computation removes that instability).

Notes. The discriminants do not change when every sample is shifted by the same vector, and S_w
and the class means lie in the span of the centred features, so for D > N the computation runs in
that span (dimension ≤ N − 1) with identical results. Constant features carry no information:
every class gets its prior and the score is Σ_c π_c log π_c.

Limits (of the method, kept as published): the shrinkage rule is not scale invariant (features of
large norm get λ ≈ 1e-10), and the score is measured on the samples the classifier was fitted
on, so with few samples per class relative to D (e.g. 20 per class at D = 1280) every backbone
fits its labels almost perfectly and SFDA saturates near 0. Rank with many samples per class, or
pass a fixed ``shrinkage``.
"""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.utils._param_validation import Interval

from transferkit.ranking._linalg import class_means, largest_eigenvalue, principal_coordinates, solve_psd
from transferkit.ranking.transferability import FloatArray, IntArray, TransferabilityEstimator


def paper_shrinkage(Sw: FloatArray) -> float:
    """The adaptive strength of Shao et al.: λ = max(exp(−5 σ_max(S_w)), 1e-10)."""
    if Sw.size == 0:  # no feature directions (constant features): σ_max = 0
        return 1.0
    return max(float(np.exp(-5.0 * max(largest_eigenvalue(Sw), 0.0))), 1e-10)


def regularised_lda_log_proba(
    X: FloatArray, y: IntArray, n_classes: int, shrinkage: float | None, n_features: int
) -> tuple[FloatArray, float]:
    """log p(c | x) of the shrunk-covariance Gaussian classifier fitted on (X, y), and λ used.

    ``n_features`` is the original feature dimension D, which sets the identity target
    tr(S_w)/D even when X holds coordinates in a lower-dimensional span.
    """
    n = X.shape[0]
    priors = np.bincount(y, minlength=n_classes) / n
    means = class_means(X, y, n_classes)
    within = X - means[y]
    Sw = within.T @ within / n
    lam = paper_shrinkage(Sw) if shrinkage is None else float(shrinkage)
    total = float(((X - X.mean(axis=0)) ** 2).sum()) / n / n_features
    if total <= 0.0:  # constant features: no evidence about the class, only the priors
        return np.tile(np.log(priors), (n, 1)), lam
    mu = np.trace(Sw) / n_features
    # Zero within-class spread (but distinct classes) would leave S̃_w singular: floor the target.
    mu = max(mu, 1e-12 * total)
    Sw_reg = (1.0 - lam) * Sw
    Sw_reg.flat[:: Sw.shape[0] + 1] += lam * mu
    W = solve_psd(Sw_reg, means.T)  # S̃_w⁻¹ μ_c, (D, C)
    scores = X @ W - 0.5 * np.einsum("cd,dc->c", means, W) + np.log(priors)
    return log_softmax(scores, axis=1), lam


class SFDA(TransferabilityEstimator):
    """SFDA score: mean log-probability of the true class after the self-challenge (higher is better).

    Parameters
    ----------
    shrinkage:
        λ in [0, 1] for the within-class scatter; ``None`` uses the paper's adaptive rule.

    Attributes
    ----------
    score_:
        The SFDA value (≤ 0).
    shrinkage_:
        The λ used in both Fisher fits.
    """

    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "shrinkage": [None, Interval(Real, 0, 1, closed="right")],
    }

    def __init__(self, *, shrinkage: float | None = None) -> None:
        self.shrinkage = shrinkage

    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        n, d = X.shape
        # The discriminants are shift invariant, so centring is free; for D > N, work in the span.
        X = principal_coordinates(X)[0] if d > n else X - X.mean(axis=0)
        log_p, lam = regularised_lda_log_proba(X, y, n_classes, self.shrinkage, d)
        # ConfMix: move each sample towards the other classes' mean by its (softened) doubt.
        confidence = softmax(np.exp(log_p), axis=1)[np.arange(n), y][:, None]
        means = class_means(X, y, n_classes)
        others = (means.sum(axis=0)[None, :] - means) / (n_classes - 1)
        mixed = confidence * X + (1.0 - confidence) * others[y]
        log_p2, _ = regularised_lda_log_proba(mixed, y, n_classes, lam, d)
        self.shrinkage_ = lam
        return float(log_p2[np.arange(n), y].mean())
