"""Self-training on confident target pseudo-labels, after alignment (an option, never part of `auto`).

Class-balanced self-training (CBST; Zou, Yu, Kumar & Wang, ECCV 2018): the head trained on the
labelled source predicts the (aligned) target; in each round, the target inputs it is most
confident about — at least `threshold` probability, and at most the same number per predicted
class, so an easy class cannot take over — join the training set with their predicted class, and
the head is trained again. The target's own labels are never read (there are none here: only
features reach this module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: a pseudo-label is kept only at this predicted probability or above
DEFAULT_THRESHOLD = 0.9
#: rounds of (predict the target, keep the confident, retrain)
DEFAULT_ROUNDS = 2


@dataclass
class SelfTrainingReport:
    """How many target inputs were pseudo-labelled in each round (for the fit summary)."""

    per_round: list[int] = field(default_factory=list)


def confident_pseudo_labels(proba: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
                            per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, predicted classes) of the rows of `proba` kept as pseudo-labels, most confident first
    within each class; at most `per_class` per class (default: an equal share of the rows)."""
    p = np.asarray(proba, np.float64)
    if p.ndim != 2 or not len(p):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    predicted, confidence = p.argmax(axis=1), p.max(axis=1)
    share = per_class if per_class is not None else int(np.ceil(len(p) / p.shape[1]))
    keep: list[int] = []
    for c in range(p.shape[1]):
        rows = np.flatnonzero((predicted == c) & (confidence >= threshold))
        rows = rows[np.argsort(-confidence[rows], kind="stable")][:share]
        keep += rows.tolist()
    index = np.array(sorted(keep), np.int64)
    return index, predicted[index]


def self_train(fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]],
               source: np.ndarray, labels: np.ndarray, target: np.ndarray, *,
               rounds: int = DEFAULT_ROUNDS, threshold: float = DEFAULT_THRESHOLD,
               ) -> tuple[Callable[[np.ndarray], np.ndarray], SelfTrainingReport]:
    """Train with `fit(X, y) -> predict_proba` on the source, then `rounds` times on source + confident target.

    `target` must already be aligned to the source. Returns the last `predict_proba` and the counts.
    """
    report = SelfTrainingReport()
    predict = fit(source, labels)
    for _ in range(rounds):
        index, pseudo = confident_pseudo_labels(predict(target), threshold=threshold)
        report.per_round.append(len(index))
        if not len(index):
            break
        predict = fit(np.concatenate([source, target[index]]), np.concatenate([labels, pseudo]))
    return predict, report
