"""`transferkit curve` end to end on a tiny generated set, in-process through the real entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from transferkit import curves

TINY = ("--backbone", "test_efficientnet", "--weights", "random")


def test_curve_writes_the_picture_the_points_and_says_the_verdict(cli, image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "colours-curve"
    code, output = cli("curve", image_folder, "--out", out, "--shots", "1,2,all", "--seeds", "2", "--test", "0.3",
                       "--cache-dir", tmp_path / "cache", *TINY)
    assert code == 0, output
    flat = " ".join(output.split())
    assert "labels per class" in flat and "from scratch: hog" in flat and "transfer: test_efficientnet" in flat
    assert re.search(r"transfer \(probe\) (stops paying|pays at every point|pays up to|does not pay here)", flat)
    assert f"curve {out / 'curve.png'}" in flat
    frame = curves.read_curve(out / "curve.csv")
    assert len(frame) == 3 * 2 * 2 and set(frame["shots"]) == {"1", "2", "all"}
    with Image.open(out / "curve.png") as img:
        assert np.asarray(img.convert("L"), np.float32).std() > 20
    assert json.loads((out / "curve.json").read_text())["status"] == "complete"
    # a second run into the same folder needs --overwrite; a user's folder is never written into
    code, message = cli("curve", image_folder, "--out", out, "--shots", "1", *TINY)
    assert code == 2 and "--overwrite" in message
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    code, message = cli("curve", image_folder, "--out", mine, "--overwrite", *TINY)
    assert code == 2 and "thesis.tex" in message and sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_curve_refuses_bad_shots_and_flags_that_do_not_apply(cli, image_folder: Path, tmp_path: Path) -> None:
    code, message = cli("curve", image_folder, "--out", tmp_path / "a", "--shots", "0,5")
    assert code == 2 and "0 labels per class" in message
    code, message = cli("curve", image_folder, "--out", tmp_path / "b", "--shots", "-3")
    assert code == 2 and "shots" in message
    code, message = cli("curve", image_folder, "--out", tmp_path / "c", "--budget", "5")
    assert code == 2 and "--finetune" in message
    code, message = cli("curve", image_folder, "--out", tmp_path / "d", "--text-column", "text")
    assert code == 2 and "table" in message  # texts come in a table, not a folder of images
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_curve_extracts_the_pretrained_features_on_the_engine_asked(cli, image_folder: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    """`--engine` (as fit's) reaches the pretrained backbone's extraction; the from-scratch features run as they
    ship (auto: their own engine), never warned about an engine that does not apply to them."""
    import transferkit.features

    real = transferkit.features.extract_features
    asked: dict[str, str] = {}

    def recording(backbone, items, *, options, **kwargs):
        asked[backbone.name] = options.engine
        return real(backbone, items, options=options, **kwargs)

    monkeypatch.setattr(transferkit.features, "extract_features", recording)
    code, output = cli("curve", image_folder, "--out", tmp_path / "c", "--shots", "2", "--seeds", "1", "--engine",
                       "torch", "--no-cache", *TINY)
    assert code == 0, output
    assert asked == {"test_efficientnet": "torch", "hog": "auto"}
    assert "does not apply" not in output
