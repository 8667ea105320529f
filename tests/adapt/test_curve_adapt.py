"""`curve DATA --adapt-to TARGET`: adapted transfer drawn beside plain transfer and from scratch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit import curves
from transferkit.errors import ConfigError

COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}


def _images(folder: Path, n: int, seed: int, pale: bool, labelled: bool = True) -> None:
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        for i in range(n):
            pixels = np.array(colour)[None, None, :] + rng.normal(0, 40, (32, 32, 3))
            if pale:  # the deployment domain: washed out and brighter (a class-independent shift)
                pixels = pixels * 0.35 + 150
            out = folder / (name if labelled else "") / f"{name[0]}{i:03d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapt-curve")
    _images(root / "data" / "train", 12, 0, pale=False)
    _images(root / "data" / "test", 8, 1, pale=True)  # DATA's own test split: from the target's domain
    _images(root / "target", 10, 2, pale=True, labelled=False)
    return root / "data", root / "target"


@pytest.mark.slow  # extracts 84 images' features twice (seconds; a minute under load)
def test_curve_draws_adapted_transfer_beside_plain_and_scratch(shifted: tuple[Path, Path], cli, tmp_path: Path) -> None:
    data, target = shifted
    out = tmp_path / "curve"
    result = cli("curve", data, "--adapt-to", target, "--adapt-method", "standardize", "--shots", "2,all",
                 "--seeds", "1", "--backbone", "test_efficientnet", "--weights", "random", "--out", out, "--no-cache")
    assert result.code == 0, result.output
    assert "adapted transfer" in result.output
    frame = curves.read_curve(out / "curve.csv")
    assert set(frame["method"]) == {curves.TRANSFER, curves.ADAPTED, curves.SCRATCH}
    plain = frame[frame["method"] == curves.TRANSFER].set_index("shots")["accuracy"]
    adapted = frame[frame["method"] == curves.ADAPTED].set_index("shots")["accuracy"]
    assert not np.allclose(plain.values, adapted.values)  # the test features were aligned
    saved = json.loads((out / "curve.json").read_text())
    adapted_verdict = next(v for v in saved["summary"] if v["method"] == curves.ADAPTED)
    assert "plain transfer" in " ".join(adapted_verdict["sentences"])
    assert (out / "curve.png").stat().st_size > 0


def test_adapted_points_need_a_target() -> None:
    with pytest.raises(ConfigError, match="target"):
        curves.curve(Path("."), methods=(curves.TRANSFER, curves.ADAPTED))
    with pytest.raises(ConfigError, match="keep the 'transfer' method"):  # they are its heads, adapted
        curves.curve(Path("."), methods=(curves.ADAPTED,), adapt_to=["a.png"])
