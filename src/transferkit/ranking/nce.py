r"""NCE: Negative Conditional Entropy of target labels given source labels.

Paper: A. T. Tran, C. V. Nguyen, T. Hassner. "Transferability and Hardness of Supervised
Classification Tasks". ICCV 2019.

Idea: label the target samples with the source classifier's hard predictions z = argmax θ(x); if
the source label tells the target label, transfer is easy. With the empirical joint
P̂(y, z) = #{i: y_i = y, z_i = z} / N and P̂(z) = Σ_y P̂(y, z),

    NCE = −H(Y | Z) = Σ_{y, z} P̂(y, z) log (P̂(y, z) / P̂(z))          (≤ 0, higher is better).

Source labels that determine the target label give 0; source labels independent of the target
give −H(Y). Empty cells contribute 0 (the limit of p log p), so the score is always finite.

Input: ``fit(source, y)`` where ``source`` is either the source head's probabilities (N, Z), of
which the argmax is taken, or a 1-D array of source labels (any type). Ties in the argmax go to
the first source class.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from transferkit.ranking.transferability import (
    FloatArray,
    IntArray,
    TransferabilityEstimator,
    as_probability_matrix,
    encode_labels,
)


class NCE(TransferabilityEstimator):
    """NCE score from the source model's hard predictions (higher is better).

    Attributes
    ----------
    score_:
        The NCE value (≤ 0).
    """

    input_kind = "source_probabilities"

    def __init__(self) -> None:
        pass

    def _validate_input(self, X: ArrayLike) -> FloatArray:
        arr = np.asarray(X)
        if arr.ndim != 1:
            return as_probability_matrix(arr)
        # Source labels given directly: one-hot them, so both input forms share the path below.
        codes, classes = encode_labels(arr, arr.shape[0], min_classes=1, what="source labels")
        onehot = np.zeros((codes.size, classes.size))
        onehot[np.arange(codes.size), codes] = 1.0
        return onehot

    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        n, n_source = X.shape
        z = X.argmax(axis=1)
        joint = np.bincount(y * n_source + z, minlength=n_classes * n_source).reshape(n_classes, n_source) / n
        marginal = joint.sum(axis=0)
        nz = joint > 0
        return float((joint[nz] * np.log(joint[nz] / np.broadcast_to(marginal, joint.shape)[nz])).sum())
