r"""GBC: Gaussian Bhattacharyya Coefficient.

Paper: M. Pándy, A. Agostinelli, J. Uijlings, V. Ferrari, T. Mensink. "Transferability Estimation
using Bhattacharyya Class Separability". CVPR 2022.

Idea: a backbone transfers well when its features already keep the target classes apart. Reduce
the features with PCA to d dimensions (d = 64 by default, capped by the rank of the centred
features), model each class as a Gaussian with diagonal covariance N(μ_c, diag(σ_c²)), and sum the
pairwise overlaps. For classes i, j with σ̄² = (σ_i² + σ_j²)/2 the Bhattacharyya distance is

    D_B(i, j) = 1/8 Σ_k (μ_ik − μ_jk)² / σ̄_k² + 1/2 Σ_k log(σ̄_k² / √(σ_ik² σ_jk²)),

the Bhattacharyya coefficient BC(i, j) = exp(−D_B(i, j)) ∈ (0, 1], and

    GBC = − Σ_{i ≠ j} BC(c_i, c_j)           (in [−C(C − 1), 0], higher is better).

Identical classes overlap completely (BC = 1, GBC = −C(C − 1)); well separated classes give
GBC → 0. The sum is over ordered pairs, as in the paper.

Notes. The PCA is exact (eigendecomposition of the smaller Gram matrix), so the score does not
depend on sample order. Class variances use 1/n_c and are floored at ``var_floor`` times the
variance of the component, so a class whose samples coincide (duplicates) does not produce an
infinite distance; every class needs at least 2 samples. Constant features have no principal
component (d = 0): every pair overlaps fully and the score is −C(C − 1).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from transferkit.ranking._linalg import class_means, principal_coordinates
from transferkit.ranking.transferability import FloatArray, IntArray, TransferabilityEstimator


def bhattacharyya_coefficients(means: FloatArray, variances: FloatArray) -> FloatArray:
    """(C, C) matrix of BC between diagonal Gaussians N(means[c], diag(variances[c]))."""
    n_classes = means.shape[0]
    log_var = np.log(variances)
    bc = np.empty((n_classes, n_classes))
    for i in range(n_classes):  # row by row: O(C d) memory instead of O(C² d)
        avg = 0.5 * (variances[i] + variances)
        dist = 0.125 * ((means[i] - means) ** 2 / avg).sum(axis=1) + 0.5 * (
            np.log(avg) - 0.5 * (log_var[i] + log_var)
        ).sum(axis=1)
        bc[i] = np.exp(-dist)
    return bc


class GBC(TransferabilityEstimator):
    """GBC score: minus the summed pairwise Bhattacharyya coefficients of PCA'd class Gaussians.

    Parameters
    ----------
    n_components:
        PCA dimension d (capped by the rank of the centred features).
    var_floor:
        Lower bound on each class variance, relative to the variance of the component.

    Attributes
    ----------
    score_:
        The GBC value, in [−C(C − 1), 0].
    n_components_:
        The PCA dimension used.
    coefficients_:
        (C, C) Bhattacharyya coefficients between classes (diagonal 1).
    """

    min_samples_per_class = 2

    _parameter_constraints: ClassVar[dict[str, list[object]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "var_floor": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, *, n_components: int = 64, var_floor: float = 1e-6) -> None:
        self.n_components = n_components
        self.var_floor = var_floor

    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        Z, component_var = principal_coordinates(X, self.n_components)
        self.n_components_ = Z.shape[1]
        means = class_means(Z, y, n_classes)
        within = Z - means[y]
        variances = class_means(within * within, y, n_classes)
        variances = np.maximum(variances, self.var_floor * component_var[None, :])
        bc = bhattacharyya_coefficients(means, variances)
        self.coefficients_ = bc
        return float(np.trace(bc) - bc.sum())
