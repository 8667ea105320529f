"""The report's plots (`report.plots`), drawn from hand-made numbers: each an inlined PNG that is not blank, and
the confusion matrix with one cell per pair of classes."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from transferkit.report import plots


def decoded(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("L"), np.float32)


def test_each_plot_is_a_png_that_is_not_blank() -> None:
    per_class = {c: {"precision": p, "recall": r, "f1": f, "support": 5}
                 for c, p, r, f in (("red", 1.0, 0.8, 0.89), ("blue", 0.5, 0.6, 0.55))}
    for uri in (plots.confusion_matrix(["red", "blue"], [[4, 1], [2, 3]]), plots.per_class_scores(per_class),
                plots.curve([1, 5, 20], {"transfer": [0.5, 0.7, 0.9], "from scratch": [0.3, 0.5, 0.8]}, "labels")):
        pixels = decoded(uri)
        assert pixels.shape[0] > 100 and pixels.std() > 10  # axes, text and marks on white


def test_a_larger_confusion_matrix_is_a_larger_picture_of_its_counts() -> None:
    small = decoded(plots.confusion_matrix(["a", "b"], [[5, 0], [0, 5]]))
    labels = [f"class {i}" for i in range(12)]
    big = decoded(plots.confusion_matrix(labels, np.eye(12, dtype=int).tolist()))
    assert big.size > small.size
    empty = decoded(plots.confusion_matrix(["a", "b"], [[0, 0], [0, 0]]))
    assert not np.array_equal(empty, small)  # the counts are drawn
