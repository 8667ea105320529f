"""A curve's files (`curves.save`): the CSV, JSON and PNG written together, read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from transferkit import curves


def test_files_round_trip_and_the_picture_is_not_blank(small_curve: pd.DataFrame, tmp_path: Path) -> None:
    written = curves.save_curve(small_curve, tmp_path / "out", title="colours")
    back = curves.read_curve(written["csv"])
    pd.testing.assert_frame_equal(back, small_curve)
    with Image.open(written["png"]) as img:
        assert img.size[0] >= 600 and img.size[1] >= 350
        pixels = np.asarray(img.convert("L"), np.float32)
    assert pixels.std() > 20  # lines, text and bands on white, not an empty canvas
    record = json.loads(written["json"].read_text())
    assert record["format"] == "transferkit.curve" and record["status"] == "complete"
    assert record["summary"] and record["notes"] == small_curve.attrs["notes"]
