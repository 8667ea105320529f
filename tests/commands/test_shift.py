"""`transferkit shift DATA TARGET`: the verdict, the tables, shift.png and shift.json; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from transferkit.commands import app

runner = CliRunner()


def run(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        from transferkit.errors import TransferkitError

        if isinstance(result.exception, TransferkitError):
            return 2, str(result.exception)
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def shifted(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA's images in another domain (washed out, tinted, flat folder, no labels)."""
    root = tmp_path_factory.mktemp("target") / "camera2"
    root.mkdir()
    for i, p in enumerate(sorted(image_folder.rglob("*.jpg"))):
        x = np.asarray(Image.open(p), np.float32)
        y = np.clip((x - 128) * 0.35 + 150 + np.array([30, 10, -30]), 0, 255).astype(np.uint8)
        Image.fromarray(y).save(root / f"shot_{i:03d}.jpg")
    return root


@pytest.mark.slow  # the real EfficientNet-Lite0 on 60 images: ~4 min on the shared 2-core machine
def test_shift_reports_a_strong_shift_and_writes_the_map(image_folder: Path, shifted: Path, tmp_path: Path) -> None:
    out = tmp_path / "diag"
    fast = ("--precision", "fp32", "--engine", "torch")
    code, output = run("shift", image_folder, shifted, "--out", out, "--json", *fast)
    assert code == 0, output
    result = json.loads(output)
    assert result["level"] == "strongly" and result["domain_accuracy"] > 0.9
    assert result["proxy_a_distance"] > 1.5
    assert result["alignment"] == "standardize (shrunk)" and result["domain_accuracy_aligned"] is not None  # auto
    assert {c["label"] for c in result["per_class"]} == {"red", "green", "blue"}
    assert "differs strongly" in result["verdict"]
    assert (out / "shift.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "shift.json").read_text())["verdict"] == result["verdict"]
    # the tables and the verdict for people; a rerun replaces its own files
    code, text = run("shift", image_folder, shifted, "--out", out, *fast)
    assert code == 0, text
    assert "proxy A-distance" in text and "verdict:" in text and "per class of DATA" in text


def test_shift_errors_name_the_problem_and_write_nothing(image_folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "never"
    code, message = run("shift", image_folder, empty, "--out", out)
    assert code == 2 and str(empty) in message and "is empty" in message
    assert not out.exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "shift.png").write_bytes(b"my own picture")
    code, message = run("shift", image_folder, image_folder, "--out", foreign)
    assert code == 2 and "did not write" in message
    assert (foreign / "shift.png").read_bytes() == b"my own picture"
