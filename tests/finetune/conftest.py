"""Tiny synthetic data for fine-tuning tests: coloured images with a learnable signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.estimators.finetuned import FinetunedClassifier
from transferkit.finetune.config import FinetuneConfig

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def write_images(root: Path, per_class: int = 8, size: int = 24, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-60, 60, size=(size, size, 3))
            pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("ft-images"))


def items_labels(root: Path) -> tuple[list[str], list[str]]:
    paths = sorted(str(p) for p in root.rglob("*.png"))
    return paths, [Path(p).parent.name for p in paths]


#: FinetunedClassifier parameters (the rest of a `tiny` call are FinetuneConfig training settings)
ESTIMATOR_PARAMS = ("backbone", "weights", "head", "seed", "batch_size", "precision", "cache_dir", "progress",
                    "device", "run_dir", "resume")


def tiny_estimator(**overrides: object) -> FinetunedClassifier:
    """A seconds-long CPU run: random-init test_efficientnet at 32 px, fp32, no progress bar."""
    base: dict[str, object] = dict(backbone="test_efficientnet", weights="random", input_size=32, epochs=2,
                                   batch_size=8, precision="fp32", progress=False, augment=False, num_workers=0,
                                   lr=1e-2, patience=0)
    base.update(overrides)
    params = {k: v for k, v in base.items() if k in ESTIMATOR_PARAMS}
    training = FinetuneConfig(**{k: v for k, v in base.items() if k not in ESTIMATOR_PARAMS})  # type: ignore[arg-type]
    return FinetunedClassifier(**params, training=training)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def xy(images: Path) -> tuple[list[str], list[str]]:
    """(paths, labels) of the session's synthetic images."""
    return items_labels(images)


@pytest.fixture()
def tiny() -> object:
    """`tiny_estimator` as a fixture (test modules cannot import conftest under --import-mode=importlib)."""
    return tiny_estimator
