"""The curve's picture (`curves.plot`), drawn from a hand-made frame: one line per method, not a blank canvas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from transferkit import curves
from transferkit.curves.plot import plot_curve


def _frame(methods: tuple[str, ...]) -> pd.DataFrame:
    rows = [{"method": m, "backbone": "x", "shots": s, "seed": seed, "n_train": 3 * (30 if s == "all" else int(s)),
             "accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc, "seconds": 0.1}
            for i, m in enumerate(methods) for seed in (0, 1)
            for s, acc in (("1", 0.4 + 0.2 * i), ("5", 0.6 + 0.1 * i + 0.05 * seed), ("all", 0.9))]
    frame = pd.DataFrame(rows, columns=list(curves.COLUMNS))
    frame.attrs.update(n_classes=3, n_test=9)
    return frame


def _coloured(path: Path, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the picture are (nearly) this colour."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"), np.int16)
    return int((np.abs(pixels - np.array(rgb)).sum(-1) < 30).sum())


def test_each_method_is_a_line_of_its_own_colour(tmp_path: Path) -> None:
    both = plot_curve(_frame(("transfer", "from scratch")), tmp_path / "both.png", title="colours")
    with Image.open(both) as img:
        assert img.format == "PNG" and img.size == (720, 440)
        assert np.asarray(img.convert("L"), np.float32).std() > 20  # lines and text on white
    transfer_blue, scratch_grey = (0x1F, 0x77, 0xB4), (0x7F, 0x7F, 0x7F)
    assert _coloured(both, transfer_blue) > 200 and _coloured(both, scratch_grey) > 200
    alone = plot_curve(_frame(("from scratch",)), tmp_path / "alone.png")
    assert _coloured(alone, transfer_blue) < 20 < _coloured(alone, scratch_grey)  # no transfer line drawn
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left behind"
