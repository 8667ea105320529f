"""Shared fixtures: small generated datasets and an isolated feature cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}


def make_image_folder(root: Path, n_per_class: int = 10, size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    """root/<colour>/<i>.jpg: noisy images whose dominant colour is the label (a learnable signal)."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            noise = rng.normal(0, 45, (size[1], size[0], 3))
            pixels = (np.array(colour)[None, None, :] + noise).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=90)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets a private default feature cache (never the user's ~/.cache)."""
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("colours") / "data")


@pytest.fixture(scope="session")
def lite0():
    """The real zoo EfficientNet-Lite0 (built once per session)."""
    from transferkit.backbones import create_backbone

    return create_backbone("efficientnet_lite0")
