"""Classification metrics, as stored in bundles (the CLI prints them as tables: `commands._console`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

import numpy as np

from transferkit.errors import EngineError


class ClassScores(TypedDict):
    """One class's precision, recall, F1 and support."""

    precision: float
    recall: float
    f1: float
    support: int


class ConfusionMatrix(TypedDict):
    """Rows: true labels, columns: predicted, both in `labels`' order."""

    labels: list[str]
    matrix: list[list[int]]


class LabelProbability(TypedDict):
    """One of an input's most likely labels (`predict --top-k`)."""

    label: str
    probability: float


class PredictionRow(TypedDict):
    """One input's prediction, as `predict --json` prints it and the server answers it. `label` and
    `probability` are None, and `error` says why, for an input that could not be read (`predict` only)."""

    input: str
    label: str | None
    probability: float | None
    top: NotRequired[list[LabelProbability]]  # with top_k > 1: the most likely labels, ties in class order
    error: NotRequired[str | None]


class Metrics(TypedDict, total=False):
    """A model's metrics on labelled data, as bundles, summaries and `evaluate --json` write them. `n` is
    always there (0, alone, without examples); `unknown_classes` when labels the model never saw were
    scored. `TransferEstimator.evaluate` adds the inputs it skipped (and a table what each column met),
    `transferkit evaluate --report` the report it wrote. ({} is a run without a test split.)"""

    n: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: ConfusionMatrix
    unknown_classes: list[str]
    skipped: dict[str, str]
    columns: Mapping[str, Mapping[str, object]]  # a table's: `estimators.tabular.ColumnCounts` by column
    report: str


def check_probabilities(proba: np.ndarray, n_classes: int, names: Sequence[str] | None = None) -> None:
    """Raise `EngineError` naming the first input unless `proba` is [n, n_classes] of finite numbers:
    a model that gives NaN or infinity (a damaged graph or weights) or the wrong number of
    probabilities makes no prediction, whatever engine ran it."""
    values = np.asarray(proba)
    if values.ndim != 2 or values.shape[1] != n_classes:
        raise EngineError(f"the model gave probabilities of shape {values.shape} for {n_classes} labels: it is not "
                          "the model its labels describe (damaged, or edited); nothing was predicted")
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        first = int(bad[0])
        name = f"'{names[first]}'" if names is not None and first < len(names) else f"input {first}"
        others = f" (and {len(bad) - 1} other input(s))" if len(bad) > 1 else ""
        raise EngineError(f"the model gave non-finite probabilities ({values[first][:4].tolist()}) for {name}{others}: "
                          "its weights or graph are damaged; nothing was predicted. Predict with the bundle "
                          "(--engine torch), or save / export the model again")


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> Metrics:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = list(classes)
    true, pred = list(y_true), list(y_pred)
    if not true:
        return {"n": 0}
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0
    )
    return {
        "n": len(true),
        "accuracy": float(accuracy_score(true, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(true, pred)),
        "macro_f1": float(f1_score(true, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {"labels": labels, "matrix": confusion_matrix(true, pred, labels=labels).tolist()},
    }


def score_probabilities(classes: np.ndarray, y_true: Sequence[str], proba: np.ndarray,
                        names: Sequence[str] | None = None) -> Metrics:
    """Metrics of a model's class probabilities [n, len(classes)] against true labels; labels the
    model never saw are scored as errors and listed in `unknown_classes`. Non-finite probabilities
    are an error naming the input (`names[i]`, when given)."""
    true = [str(label) for label in y_true]
    if len(true):
        check_probabilities(proba, len(classes), names)
    pred = classes[np.argmax(proba, axis=1)] if len(proba) else np.array([])
    metrics = classification_metrics(true, [str(p) for p in pred], sorted(set(map(str, classes)) | set(true)))
    unknown = sorted(set(true) - set(map(str, classes)))
    if unknown:
        metrics["unknown_classes"] = unknown
    return metrics


def prediction_row(name: str, proba: np.ndarray, classes: Sequence[str], top_k: int = 1) -> PredictionRow:
    """One input's prediction as `predict --json` prints it and the server answers it: the label,
    its probability, and with `top_k` > 1 the most likely labels (ties in class order).
    Probabilities that are not one finite number per class are an `EngineError` naming `name`."""
    check_probabilities(np.asarray(proba)[None, :], len(classes), [name])
    k = max(1, min(top_k, len(classes)))
    order = np.argsort(-np.asarray(proba), kind="stable")[:k]
    row: PredictionRow = {"input": name, "label": str(classes[int(order[0])]), "probability": float(proba[order[0]])}
    if k > 1:
        row["top"] = [{"label": str(classes[int(j)]), "probability": float(proba[j])} for j in order]
    return row
