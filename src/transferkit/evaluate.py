"""Classification metrics, stored in bundles and printed as tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
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


def score_probabilities(classes: np.ndarray, y_true: Sequence[str], proba: np.ndarray) -> dict[str, Any]:
    """Metrics of a model's class probabilities [n, len(classes)] against true labels; labels the
    model never saw are scored as errors and listed in `unknown_classes`."""
    true = [str(label) for label in y_true]
    pred = classes[np.argmax(proba, axis=1)] if len(proba) else np.array([])
    metrics = classification_metrics(true, [str(p) for p in pred], sorted(set(map(str, classes)) | set(true)))
    unknown = sorted(set(true) - set(map(str, classes)))
    if unknown:
        metrics["unknown_classes"] = unknown
    return metrics


def metrics_tables(metrics: dict[str, Any], title: str = "test") -> list[Any]:
    """rich Tables: the summary, per-class scores, and the confusion matrix (small class counts)."""
    from rich.table import Table

    if not metrics.get("n"):
        return []
    summary = Table(title=f"{title} ({metrics['n']} examples)")
    for col in ("accuracy", "balanced accuracy", "macro-F1"):
        summary.add_column(col, justify="right")
    summary.add_row(
        f"{metrics['accuracy']:.2%}", f"{metrics['balanced_accuracy']:.2%}", f"{metrics['macro_f1']:.3f}"
    )
    per_class = Table(title="per class")
    for col, justify in (("class", "left"), ("precision", "right"), ("recall", "right"), ("F1", "right"),
                         ("support", "right")):
        per_class.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, row in metrics["per_class"].items():
        per_class.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                          str(row["support"]))
    tables = [summary, per_class]
    cm = metrics["confusion_matrix"]
    if len(cm["labels"]) <= 20:
        matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
        matrix.add_column("")
        for label in cm["labels"]:
            matrix.add_column(label[:10], justify="right")
        for label, row in zip(cm["labels"], cm["matrix"], strict=True):
            matrix.add_row(label[:16], *[str(v) if v else "·" for v in row])
        tables.append(matrix)
    return tables


def top_k_accuracy(proba: np.ndarray, y: np.ndarray, k: int) -> float:
    top = np.argsort(-proba, axis=1)[:, :k]
    return float(np.mean([yi in row for yi, row in zip(y, top, strict=True)]))
