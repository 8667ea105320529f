r"""H-score, in its shrinkage-regularised form.

Papers: Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir, L. Guibas. "An
Information-Theoretic Approach to Transferability in Task Transfer Learning". ICIP 2019 (H-score);
S. Ibrahim, N. Ponomareva, R. Mazumder. "Newer is not always better: Rethinking transferability
metrics, their peculiarities, stability and performance". ECML PKDD 2022 (the regularised form).

Idea: features transfer well when the class-conditional means are far apart relative to the
overall spread — the asymptotic error exponent of a linear classifier. With Σ_f the covariance of
the features f and Σ_g the covariance of g(x) = E[f | y(x)] (each sample replaced by its class
mean), Bao et al. define

    H(f) = tr(Σ_f⁻¹ Σ_g).

Once D ≥ N the empirical Σ_f is singular and its (pseudo-)inverse amplifies noise directions, so
every backbone scores near the ceiling; Ibrahim et al. replace Σ_f by the Ledoit–Wolf estimate
Σ_f^α = (1 − α) S + α (tr S / D) I, with α the Ledoit–Wolf optimal shrinkage, and shrink Σ_g
with the same factor:

    H_α(f) = tr((Σ_f^α)⁻¹ (1 − α) Σ_g)          (≥ 0, higher is better).

With centred class means m_c and frequencies π_c, Σ_g = Σ_c π_c m_c m_cᵀ, so
H_α = (1 − α) Σ_c π_c m_cᵀ (Σ_f^α)⁻¹ m_c, a solve with C right-hand sides.

Notes. α equals ``sklearn.covariance.ledoit_wolf_shrinkage`` but is computed from the smaller
Gram matrix, so D ≫ N costs O(N² D) and no D × D matrix; for D > N the whole score is computed
in the span of the centred features (exact: the class means lie in it and Σ_f^α maps it to
itself). Constant features have no spread and no class-mean differences: the score is 0.
``shrinkage=0`` gives the plain H-score (with a pseudo-inverse, as in the reference code).
"""

from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from transferkit.ranking._linalg import class_means, principal_coordinates, solve_psd
from transferkit.ranking.transferability import FloatArray, IntArray, TransferabilityEstimator


def ledoit_wolf_shrinkage(Xc: FloatArray) -> float:
    """Ledoit–Wolf shrinkage α of the covariance of centred rows Xc (N, D), as scikit-learn's.

    Uses ‖XᵀX‖_F = ‖XXᵀ‖_F and Σ_jk (x_j²)ᵀ(x_k²) = Σ_i ‖x_i‖⁴ to avoid any D × D product when D > N.
    """
    n, d = Xc.shape
    gram = Xc.T @ Xc if d <= n else Xc @ Xc.T
    norms2 = (Xc * Xc).sum(axis=1)
    trace = norms2.sum() / n  # tr S
    mu = trace / d
    delta_ = float((gram * gram).sum()) / n**2  # ‖S‖_F²
    beta_ = float((norms2 * norms2).sum())
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace + d * mu**2) / d  # ‖S − μI‖_F² / D
    beta = min(beta, delta)
    return 0.0 if beta <= 0.0 or delta <= 0.0 else beta / delta


class HScore(TransferabilityEstimator):
    """Regularised H-score: tr((Σ_f^α)⁻¹ (1 − α) Σ_g) with Ledoit–Wolf α (higher is better).

    Parameters
    ----------
    shrinkage:
        α in [0, 1]; ``None`` estimates it with Ledoit–Wolf, 0 gives the plain H-score.

    Attributes
    ----------
    score_:
        The H-score (≥ 0).
    shrinkage_:
        The α used.
    """

    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "shrinkage": [None, Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, *, shrinkage: float | None = None) -> None:
        self.shrinkage = shrinkage

    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        n, d = X.shape
        Xc = X - X.mean(axis=0)
        alpha = ledoit_wolf_shrinkage(Xc) if self.shrinkage is None else float(self.shrinkage)
        self.shrinkage_ = alpha
        mu = float((Xc * Xc).sum()) / n / d
        if mu <= 0.0:  # constant features
            return 0.0
        # For D > N work in the span of the centred data (same score, N × N instead of D × D).
        Z = principal_coordinates(Xc)[0] if d > n else Xc
        cov = (1.0 - alpha) * (Z.T @ Z) / n
        cov.flat[:: cov.shape[0] + 1] += alpha * mu
        means = class_means(Z, y, n_classes)
        priors = np.bincount(y, minlength=n_classes) / n
        solved = solve_psd(cov, means.T)  # (Σ_f^α)⁻¹ m_c
        return float((1.0 - alpha) * (priors * np.einsum("cd,dc->c", means, solved)).sum())
