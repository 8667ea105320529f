"""What the curve tests share: generated colour folders and one small curve measured on them (once per
session: it is read, never changed, by the tests of `curve`, its files and its folder).

The pretrained side is a tiny random-init timm network (`test_efficientnet`) and the from-scratch
side the real HOG features, on generated images whose colour is the label, so a curve takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from transferkit import curves

COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}
TINY = {"backbone": "test_efficientnet", "weights": "random"}  # a tiny random-init network: a curve in seconds


def colour_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """root/<colour>/<i>.png: noisy 32x32 images whose dominant colour is the label."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = (np.array(COLOURS[name])[None, None, :] + rng.normal(0, 40, (32, 32, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("curve") / "colours", {"red": 12, "green": 12, "blue": 12})


@pytest.fixture(scope="session")
def small_curve(balanced: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    cache = tmp_path_factory.mktemp("curve-cache")
    return curves.curve(balanced, shots=(1, 2, 5, "all"), seeds=2, test_fraction=0.25, cache_dir=cache, **TINY)
