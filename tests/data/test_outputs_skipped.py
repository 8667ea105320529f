"""transferkit's own outputs never become training data: folders it wrote are skipped (said,
counted) wherever they sit, and `curve` / `fit` / `report` refuse an --out inside the data they read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner


def _data(tmp_path: Path, image_folder: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    return data


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def test_folders_transferkit_wrote_are_skipped_wherever_they_sit(tmp_path: Path, image_folder: Path) -> None:
    from transferkit.cache import FeatureCache
    from transferkit.data.folders import scan_folder

    data = _data(tmp_path, image_folder)
    n = len(scan_folder(data, {".jpg", ".png"}))
    # a curve inside a class folder (the case), a bundle among the classes, a cache two levels down
    _png(data / "red" / "cv" / "curve.png")
    (data / "red" / "cv" / "curve.json").write_text(json.dumps({"format": "transferkit.curve", "status": "done"}))
    _png(data / "run" / "examples" / "x.png")
    (data / "run" / "transferkit.json").write_text(json.dumps({"format": "transferkit.bundle"}))
    FeatureCache(data / "green" / "deep" / "cache").check_writable()
    _png(data / "green" / "deep" / "cache" / "features" / "x.png")
    # a user's own sub-folder with a JSON file of another format is data, as before
    _png(data / "blue" / "more" / "mine.png")
    (data / "blue" / "more" / "curve.json").write_text(json.dumps({"format": "mine"}))
    found = scan_folder(data, {".jpg", ".png"})
    assert len(found) == n + 1 and "run" not in found.classes
    assert not any("curve.png" in str(item) or "/cache/" in str(item) for item in found.items)
    skipped = {Path(k).relative_to(data).as_posix(): v for k, v in found.skipped.items()}
    assert "transferkit wrote" in skipped["red/cv"] and "curve.json" in skipped["red/cv"]
    assert "transferkit wrote" in skipped["run"] and "transferkit wrote" in skipped["green/deep/cache"]


def test_curve_and_fit_refuse_an_out_inside_their_data(tmp_path: Path, image_folder: Path) -> None:
    from transferkit.commands import app
    from transferkit.errors import ConfigError

    data = _data(tmp_path, image_folder)
    for command in (["curve", str(data), "--backbone", "test_efficientnet", "--weights", "random", "--out",
                     str(data / "red" / "cv")],
                    ["fit", str(data), "--backbone", "test_efficientnet", "--weights", "random", "--out",
                     str(data / "sub")],
                    ["report", str(tmp_path / "no-run-needed"), str(data), "--out", str(data / "red" / "r.html")]):
        result = CliRunner().invoke(app, command)
        assert isinstance(result.exception, ConfigError), (command[0], result.output)
        assert "inside the data folder" in str(result.exception)
    assert not (data / "red" / "cv").exists() and not (data / "sub").exists()
    assert not (data / "red" / "r.html").exists()
