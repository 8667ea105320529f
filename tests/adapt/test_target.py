"""Reading TARGET: any layout, labels ignored, unreadable inputs skipped and named, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from transferkit.adapt import read_target
from transferkit.errors import DataError


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (120, 30, 30)).save(path)
    return path


def test_folder_in_any_layout(tmp_path: Path) -> None:
    _image(tmp_path / "t" / "a.png")
    _image(tmp_path / "t" / "deep" / "er" / "b.jpg")
    (tmp_path / "t" / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "t" / "notes.md").write_text("hello")
    got = read_target(tmp_path / "t", "image")
    assert sorted(Path(p).name for p in got.items) == ["a.png", "b.jpg"]
    assert list(got.skipped) == [str(tmp_path / "t" / "broken.png")]
    assert got.labels_ignored and "sub-folder" in got.labels_ignored
    with pytest.raises(DataError, match=r"broken\.png"):
        read_target(tmp_path / "t", "image", strict=True)


def test_table_labels_are_ignored(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "x.png")
    (tmp_path / "t.csv").write_text("path,label\nimg/x.png,cat\nimg/missing.png,dog\n")
    got = read_target(tmp_path / "t.csv", "image")
    assert got.items == [str(tmp_path / "img" / "x.png")]
    assert got.labels_ignored == "column 'label'"
    assert len(got.skipped) == 1 and "missing.png" in next(iter(got.skipped.values()))


def test_texts_one_per_line_or_a_column(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("first text\n\nsecond text\n")
    assert read_target(tmp_path / "t.txt", "text").items == ["first text", "second text"]
    (tmp_path / "t.csv").write_text("text,label\nhello there,a\n,b\nbye now,b\n")
    got = read_target(tmp_path / "t.csv", "text")
    assert got.items == ["hello there", "bye now"] and got.labels_ignored == "column 'label'"
    assert len(got.skipped) == 1


@pytest.mark.parametrize("case", ["missing", "empty", "other-modality", "binary-text", "no-readable"])
def test_bad_targets_are_clear_errors_naming_them(tmp_path: Path, case: str) -> None:
    target = tmp_path / "target"
    modality = "image"
    if case == "empty":
        target.mkdir()
    elif case == "other-modality":
        target.mkdir()
        (target / "a.wav").write_bytes(b"RIFF")
    elif case == "binary-text":
        target = _image(tmp_path / "photo.png")
        modality = "text"
    elif case == "no-readable":
        target.mkdir()
        (target / "a.png").write_bytes(b"garbage")
    with pytest.raises(DataError) as err:
        read_target(target, modality)
    assert str(target) in str(err.value)
    assert {"missing": "not found", "empty": "empty", "other-modality": "audio",
            "binary-text": "image file", "no-readable": "no readable"}[case] in str(err.value)


def test_errors_name_the_argument_the_user_gave(tmp_path: Path) -> None:
    from transferkit.adapt import read_target
    from transferkit.errors import DataError

    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"^--adapt-to .*nowhere: not found"):
        read_target(missing, "image")
    with pytest.raises(DataError, match=r"^TARGET .*nowhere: not found") as caught:
        read_target(missing, "image", argument="TARGET")
    assert "--adapt-to" not in str(caught.value)
