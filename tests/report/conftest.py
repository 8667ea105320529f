"""What the report tests share: noisy colour images (generated once per session, read-only) and `cli`, which
runs a command and expects it to succeed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from transferkit.commands import app

COLOURS = {"red": (190, 50, 50), "green": (50, 170, 70), "blue": (50, 70, 200)}


def cli(*args: Any) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def write_images(root: Path, per_class: int = 16, noise: float = 110.0, seed: int = 0) -> Path:
    """root/<colour>/<i>.png: noisy enough that a random-init backbone gets some of them wrong."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (np.array(colour)[None, None, :] + rng.normal(0, noise, (40, 40, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # skipped, listed with its reason
    return root


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("report-images") / "colours")
