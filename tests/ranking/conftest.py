"""Synthetic data for the ranking tests: class blobs with a known amount of signal, made in memory; a tiny
folder of bright shapes on noise for ranking real backbones end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.ranking import TransferabilityEstimator

N_SOURCE_CLASSES = 12


def make_blobs(
    n_per_class: int, n_classes: int, dim: int, separation: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes with unit noise and means ``separation`` apart (0 means no signal)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.standard_normal((n_classes, dim))
    centres *= separation / np.sqrt(2 * dim)  # E‖μ_i − μ_j‖ ≈ separation
    X = centres[y] + rng.standard_normal((y.size, dim))
    order = rng.permutation(y.size)
    return X[order], y[order]


def source_probabilities(X: np.ndarray, n_source: int = N_SOURCE_CLASSES) -> np.ndarray:
    """A fixed random softmax classifier over ``n_source`` source classes, applied to features.

    Stands in for a backbone's pretrained head in the LEEP/NCE tests: informative features give
    source predictions that carry the target classes, random features give ones that do not.
    """
    rng = np.random.default_rng(1234)
    W = rng.standard_normal((X.shape[1], n_source)) * 3.0 / np.sqrt(X.shape[1])
    logits = X @ W
    logits -= logits.max(axis=1, keepdims=True)
    P = np.exp(logits)
    return P / P.sum(axis=1, keepdims=True)


def estimator_input(
    estimator: type[TransferabilityEstimator] | TransferabilityEstimator, X: np.ndarray
) -> np.ndarray:
    """What ``fit`` takes for this estimator: the features, or source probabilities made from them."""
    if estimator.input_kind == "source_probabilities":
        return source_probabilities(X).astype(X.dtype)
    return X


@pytest.fixture
def blobs() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_blobs


@pytest.fixture
def to_input() -> Callable[..., np.ndarray]:
    return estimator_input


def _shapes_folder(root: Path, n_per_class: int = 8, seed: int = 0) -> Path:
    """root/<shape>/<i>.png: a bright disc, square or bar on noise (a signal pretrained features see)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    for name in ("disc", "square", "bar"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            cx, cy, r = rng.integers(16, 32), rng.integers(16, 32), rng.integers(8, 13)
            mask = {"disc": (xx - cx) ** 2 + (yy - cy) ** 2 < r * r,
                    "square": (abs(xx - cx) < r) & (abs(yy - cy) < r),
                    "bar": (abs(xx - cx) < 3) & (abs(yy - cy) < r + 6)}[name]
            img = rng.normal(90, 30, (48, 48, 3))
            img[mask] = rng.normal(220, 15, (int(mask.sum()), 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shapes_folder(tmp_path_factory.mktemp("shapes") / "data")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature cache per test file: what a file's first ranking extracts, its later ones reuse."""
    return tmp_path_factory.mktemp("rank-cache")
