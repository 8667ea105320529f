"""What `predict` reads from its arguments (`data.inputs`), per modality: folders expanded, a file of another
modality refused, text files and `--row` JSON read."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferkit.data.inputs import expand_inputs, read_prediction_inputs
from transferkit.errors import ConfigError


def test_folders_are_expanded_to_their_files_of_that_modality(tmp_path: Path) -> None:
    for name in ("b/2.PNG", "a/1.jpg", "a/notes.txt", ".hidden/3.jpg", "4.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    got = read_prediction_inputs("image", [str(tmp_path), "elsewhere/5.jpg"])
    assert got.names == [str(tmp_path / "a/1.jpg"), str(tmp_path / "b/2.PNG"), "elsewhere/5.jpg"] == got.items
    assert expand_inputs([str(tmp_path)], {".wav"}) == [str(tmp_path / "4.wav")]


def test_an_input_of_another_modality_or_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'cat\.jpg' is an image file, but this is a text model"):
        read_prediction_inputs("text", ["a sentence", "cat.jpg"])
    with pytest.raises(ConfigError, match="audio file, but this is a image model"):
        read_prediction_inputs("image", ["a.wav"])
    with pytest.raises(ConfigError, match="nothing to predict"):
        read_prediction_inputs("image", [])
    with pytest.raises(ConfigError, match="--row is for table models"):
        read_prediction_inputs("text", ["x"], rows=['{"a": 1}'])


def test_texts_and_rows(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("first line\n\nthird line\n")
    got = read_prediction_inputs("text", ["a literal sentence", str(lines)])
    assert got.items[0] == "a literal sentence" and "first line" in got.items and "third line" in got.items
    assert len(got.names) == len(got.items)
    rows = read_prediction_inputs("table", [], rows=['{"size": 2.5}', '{"shape": " "}'], columns=("size", "shape"))
    assert rows.items == [{"size": 2.5, "shape": None}, {"size": None, "shape": None}]
    assert rows.names == ["--row 1", "--row 2"]
