"""What a report shows about a model on labelled data, computed once: probabilities, metrics,
calibration, the most confidently wrong examples, and the embeddings to map.

The model is any loaded bundle (`transferkit.load`): it answers `classes_`, `features(items)` and
`proba_from_features(values)`. Features are extracted once and serve the metrics (through the
same `score_probabilities` every model's `evaluate` uses), the reliability diagram and the 2-D map.

Expected calibration error (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
confidences (the top probability) are put in M equal-width bins B_m over [0, 1], and

    ECE = Σ_m |B_m| / n · |acc(B_m) − conf(B_m)|

the gap between how often the model is right and how sure it says it is, averaged over bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from transferkit.data.dataset import LabelledData
from transferkit.metrics import Metrics

if TYPE_CHECKING:
    from transferkit.estimators.transfer_estimator import TransferEstimator

#: bins of the reliability diagram and of the ECE
CALIBRATION_BINS = 10


@dataclass
class Calibration:
    """Per-bin accuracy and confidence, and the expected calibration error."""

    edges: np.ndarray  # [M + 1]
    accuracy: np.ndarray  # [M], NaN where a bin is empty
    confidence: np.ndarray  # [M], NaN where a bin is empty
    counts: np.ndarray  # [M]
    ece: float


@dataclass
class Analysis:
    """Everything the report's sections are drawn from."""

    classes: list[str]
    #: indices into the evaluated data of the examples that could be read, in order
    ok_index: np.ndarray
    true: list[str]
    predicted: list[str]
    proba: np.ndarray  # [n_ok, n_classes]
    features: np.ndarray  # [n_ok, D]
    metrics: Metrics  # `metrics.score_probabilities`, as bundles and summaries write it
    calibration: Calibration
    #: (index into ok_index, confidence) of wrong predictions, most confident first
    confidently_wrong: list[tuple[int, float]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> Calibration:
    """Reliability of `confidence` (top probability per example) given whether each was `correct`."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    # a confidence of exactly 1 belongs in the last bin; 0 < c ≤ 1 always holds for a softmax
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    acc = np.full(bins, np.nan)
    conf = np.full(bins, np.nan)
    for b in range(bins):
        mask = which == b
        if mask.any():
            acc[b] = float(np.mean(correct[mask]))
            conf[b] = float(np.mean(confidence[mask]))
    n = max(1, len(confidence))
    ece = float(sum(counts[b] / n * abs(acc[b] - conf[b]) for b in range(bins) if counts[b]))
    return Calibration(edges=edges, accuracy=acc, confidence=conf, counts=counts, ece=ece)


def analyse(model: TransferEstimator, data: LabelledData, *, n_wrong: int = 12) -> Analysis:
    """Run `model` once over `data` and compute what the report shows."""
    from transferkit.metrics import score_probabilities

    classes = np.asarray(model.classes_)
    feats = model.features(list(data.items))
    values = np.asarray(feats.values, np.float32)
    proba = (np.asarray(model.proba_from_features(values), np.float64) if len(values)
             else np.zeros((0, len(classes))))
    ok_index = np.flatnonzero(np.asarray(feats.ok))
    true = [str(data.labels[i]) for i in ok_index]
    metrics = score_probabilities(classes, true, proba)
    columns = getattr(model, "last_columns_", None)
    if columns:  # table models: what each column met (missing cells, unreadable files)
        metrics["columns"] = columns
    skipped = {str(data.items[i]): str(reason) for i, reason in feats.failed.items()}
    metrics["skipped"] = skipped
    predicted = [str(classes[j]) for j in np.argmax(proba, axis=1)] if len(proba) else []
    confidence = proba.max(axis=1) if len(proba) else np.zeros(0)
    correct = np.array([p == t for p, t in zip(predicted, true, strict=True)], bool)
    wrong = np.flatnonzero(~correct)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:n_wrong]
    return Analysis(
        classes=[str(c) for c in classes], ok_index=ok_index, true=true, predicted=predicted, proba=proba,
        features=values, metrics=metrics, calibration=calibration(confidence, correct),
        confidently_wrong=[(int(i), float(confidence[i])) for i in order], skipped=skipped,
    )


def embedding_map(features: np.ndarray, seed: int = 0, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray, str]:
    """A 2-D map of `features`: (indices of the points mapped, coordinates [m, 2], method name).

    UMAP when the `umap` package imports, else t-SNE (scikit-learn), else PCA for very few points.
    More than `max_points` points are subsampled (seeded) to keep the report quick.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    n = len(features)
    index = np.arange(n)
    if n > max_points:
        index = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    x = StandardScaler().fit_transform(np.asarray(features[index], np.float64))
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    if len(x) < 3 or x.shape[1] < 2:
        coords = np.zeros((len(x), 2))
        coords[:, : min(2, x.shape[1])] = x[:, :2]
        return index, coords, "raw features"
    try:
        import umap

        if len(x) >= 10:
            reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1))
            return index, np.asarray(reducer.fit_transform(x)), "UMAP"
    except ImportError:
        pass
    if len(x) >= 10:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(x) - 1) / 3.0))
        coords = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
        return index, np.asarray(coords), "t-SNE"
    return index, PCA(n_components=2, random_state=seed).fit_transform(x), "PCA"
