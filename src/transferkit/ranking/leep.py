r"""LEEP: Log Expected Empirical Prediction.

Paper: C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau. "LEEP: A New Measure to Evaluate
Transferability of Learned Representations". ICML 2020.

Idea: use the backbone's own source classifier. Its predicted distribution θ(x) over Z source
classes, combined with the empirical conditional of target labels given source labels, is a
ready-made target classifier; LEEP is that classifier's average log-likelihood. With N samples,

    P̂(y, z) = 1/N Σ_{i: y_i = y} θ_z(x_i),     P̂(z) = Σ_y P̂(y, z),     P̂(y | z) = P̂(y, z) / P̂(z),

    LEEP = 1/N Σ_i log Σ_z P̂(y_i | z) θ_z(x_i)          (≤ 0, higher is better).

Perfect, deterministic source predictions that map one-to-one onto the target classes give 0;
uniform predictions give Σ_y π_y log π_y (log(1/C) for balanced classes). The inner sum is always
positive (P̂(y_i | z) ≥ θ_z(x_i)/(N P̂(z))), so the score is finite; a source class that no sample
predicts (P̂(z) = 0) contributes nothing.

Input: ``fit(source_probs, y)`` with ``source_probs`` (N, Z), the source head's softmax output.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from transferkit.ranking._linalg import class_sums
from transferkit.ranking.transferability import FloatArray, IntArray, TransferabilityEstimator, as_probability_matrix


def empirical_conditional(P: FloatArray, y: IntArray, n_classes: int) -> FloatArray:
    """P̂(y | z) as a (C, Z) matrix from soft source predictions P (N, Z) and target codes y."""
    joint = class_sums(P, y, n_classes)
    marginal = joint.sum(axis=0)
    return np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)


class LEEP(TransferabilityEstimator):
    """LEEP score from the source model's class probabilities (higher is better).

    Attributes
    ----------
    score_:
        The LEEP value (≤ 0).
    conditional_:
        (C, Z) empirical P̂(target class | source class).
    """

    input_kind = "source_probabilities"

    def __init__(self) -> None:
        pass

    def _validate_input(self, X: ArrayLike) -> FloatArray:
        return as_probability_matrix(X)

    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        cond = empirical_conditional(X, y, n_classes)
        self.conditional_ = cond
        expected = (X * cond[y]).sum(axis=1)  # Σ_z P̂(y_i | z) θ_z(x_i)
        return float(np.log(expected).mean())
