"""Classification metrics as bundles store them (`transferkit.metrics`): the figures, the per-class table and the
confusion matrix; probabilities that are not one finite number per class are an error naming the input."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import EngineError
from transferkit.metrics import check_probabilities, classification_metrics, prediction_row, score_probabilities


def test_the_metrics_of_hand_counted_predictions() -> None:
    m = classification_metrics(["a", "a", "a", "b"], ["a", "a", "b", "b"], ["a", "b"])
    assert m["n"] == 4 and m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)  # recall of a, recall of b
    assert m["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["confusion_matrix"] == {"labels": ["a", "b"], "matrix": [[2, 1], [0, 1]]}  # rows: true, columns: predicted
    assert classification_metrics([], [], ["a"]) == {"n": 0}


def test_labels_the_model_never_saw_are_errors_and_listed() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = score_probabilities(np.array(["cat", "dog"]), ["cat", "dog", "fox"], proba)
    assert m["accuracy"] == pytest.approx(2 / 3) and m["unknown_classes"] == ["fox"]
    assert m["confusion_matrix"]["labels"] == ["cat", "dog", "fox"]


def test_a_prediction_row_ranks_the_labels_and_keeps_ties_in_class_order() -> None:
    row = prediction_row("x.jpg", np.array([0.25, 0.5, 0.25]), ["a", "b", "c"], top_k=3)
    assert (row["input"], row["label"], row["probability"]) == ("x.jpg", "b", 0.5)
    assert [t["label"] for t in row["top"]] == ["b", "a", "c"]
    assert "top" not in prediction_row("x.jpg", np.array([0.25, 0.5, 0.25]), ["a", "b", "c"])
    assert len(prediction_row("x.jpg", np.array([0.4, 0.6]), ["a", "b"], top_k=9)["top"]) == 2


def test_non_finite_or_misshapen_probabilities_name_the_input() -> None:
    with pytest.raises(EngineError, match=r"non-finite probabilities .* for 'b\.jpg' \(and 1 other input"):
        check_probabilities(np.array([[0.5, 0.5], [np.nan, 1.0], [np.inf, 0.0]]), 2, ["a.jpg", "b.jpg", "c.jpg"])
    with pytest.raises(EngineError, match=r"shape \(2, 3\) for 2 labels"):
        check_probabilities(np.ones((2, 3)) / 3, 2)
    with pytest.raises(EngineError, match=r"'x\.jpg'"):
        prediction_row("x.jpg", np.array([np.nan, 1.0]), ["a", "b"])
    check_probabilities(np.array([[0.5, 0.5]]), 2)  # finite and of the right shape: no error
