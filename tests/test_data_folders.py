"""scan_folder: class-per-folder layouts, pre-split layouts, and nothing dropped without a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transferkit.data.folders import scan_folder
from transferkit.errors import DataError

EXTS = frozenset({".jpg", ".png"})


def _touch(root: Path, *relative: str) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _rel(root: Path, items: list[str]) -> list[str]:
    return [Path(item).relative_to(root).as_posix() for item in items]


def test_class_folders(tmp_path: Path) -> None:
    _touch(tmp_path, "dog/b.jpg", "cat/2.png", "cat/1.JPG", "dog/a.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == ["cat/1.JPG", "cat/2.png", "dog/a.jpg", "dog/b.jpg"]
    assert data.labels == ["cat", "cat", "dog", "dog"]
    assert data.splits is None
    assert data.skipped == {}
    assert data.modality == "image"
    assert data.source == str(tmp_path)
    assert all(isinstance(item, str) and os.path.isabs(item) for item in data.items)


def test_order_is_deterministic_and_sorted(tmp_path: Path) -> None:
    _touch(tmp_path, *[f"c{i % 3}/{name}.jpg" for i, name in enumerate("qwertyuiop")])
    first = scan_folder(tmp_path, EXTS, "image")
    second = scan_folder(str(tmp_path), EXTS, "image")
    assert first.items == second.items
    assert first.items == sorted(first.items)


def test_nested_folders_belong_to_their_class(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/2021/a.jpg", "cat/2021/summer/b.jpg", "cat/z.jpg", "dog/x.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == ["cat/2021/a.jpg", "cat/2021/summer/b.jpg", "cat/z.jpg", "dog/x.jpg"]
    assert data.labels == ["cat", "cat", "cat", "dog"]


def test_hidden_files_and_folders_are_ignored(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/a.jpg", "cat/.DS_Store", "cat/._a.jpg", "cat/.cache/b.jpg", ".git/x.jpg",
           "__MACOSX/cat/._a.jpg", "dog/d.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == ["cat/a.jpg", "dog/d.jpg"]
    assert data.classes == ["cat", "dog"]
    assert data.skipped == {}


def test_other_file_types_are_skipped_with_a_reason(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/a.jpg", "cat/notes.txt", "cat/README", "dog/d.png")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == ["cat/a.jpg", "dog/d.png"]
    assert set(_rel(tmp_path, list(data.skipped))) == {"cat/notes.txt", "cat/README"}
    assert ".txt" in data.skipped[str(tmp_path / "cat/notes.txt")]
    assert "no extension" in data.skipped[str(tmp_path / "cat/README")]


def test_loose_file_next_to_class_folders_is_skipped_and_counted(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/a.jpg", "dog/d.jpg", "stray.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert len(data) == 2
    assert "not inside a class folder" in data.skipped[str(tmp_path / "stray.jpg")]


def test_empty_class_folder_is_reported(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/a.jpg", "dog/d.jpg", "bird/notes.txt")
    (tmp_path / "fish").mkdir()
    data = scan_folder(tmp_path, EXTS, "image")
    assert data.classes == ["cat", "dog"]
    assert "no usable files" in data.skipped[str(tmp_path / "fish")]
    assert "no usable files" in data.skipped[str(tmp_path / "bird")]


def test_already_split_layout(tmp_path: Path) -> None:
    _touch(tmp_path, "train/cat/a.jpg", "train/dog/b.jpg", "train/dog/c.jpg", "validation/cat/d.jpg",
           "test/dog/e.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == [
        "train/cat/a.jpg", "train/dog/b.jpg", "train/dog/c.jpg", "validation/cat/d.jpg", "test/dog/e.jpg",
    ]
    assert data.labels == ["cat", "dog", "dog", "cat", "dog"]
    assert data.splits == ["train", "train", "train", "val", "test"]


@pytest.mark.parametrize("name", ["val", "valid", "Validation"])
def test_val_aliases(tmp_path: Path, name: str) -> None:
    _touch(tmp_path, "train/cat/a.jpg", f"{name}/cat/b.jpg")
    assert scan_folder(tmp_path, EXTS, "image").splits == ["train", "val"]


def test_split_layout_with_train_only(tmp_path: Path) -> None:
    _touch(tmp_path, "train/cat/a.jpg", "train/dog/b.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert data.splits == ["train", "train"]


def test_empty_optional_split_folder_is_reported(tmp_path: Path) -> None:
    _touch(tmp_path, "train/cat/a.jpg")
    (tmp_path / "test").mkdir()
    data = scan_folder(tmp_path, EXTS, "image")
    assert data.splits == ["train"]
    assert str(tmp_path / "test") in data.skipped


def test_split_folders_without_train(tmp_path: Path) -> None:
    _touch(tmp_path, "val/cat/a.jpg", "test/cat/b.jpg")
    with pytest.raises(DataError, match=r"no 'train' folder"):
        scan_folder(tmp_path, EXTS, "image")


def test_split_folders_mixed_with_class_folders(tmp_path: Path) -> None:
    _touch(tmp_path, "train/cat/a.jpg", "dog/b.jpg")
    with pytest.raises(DataError, match=r"mixes split folders \(train\) with other folders \(dog\)"):
        scan_folder(tmp_path, EXTS, "image")


def test_two_folders_for_the_same_split(tmp_path: Path) -> None:
    _touch(tmp_path, "train/cat/a.jpg", "val/cat/b.jpg", "valid/cat/c.jpg")
    with pytest.raises(DataError, match="'val' split"):
        scan_folder(tmp_path, EXTS, "image")


def test_train_folder_without_classes(tmp_path: Path) -> None:
    _touch(tmp_path, "train/a.jpg", "val/cat/b.jpg")
    with pytest.raises(DataError, match=r"train: no class sub-folders"):
        scan_folder(tmp_path, EXTS, "image")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: folder not found"):
        scan_folder(tmp_path / "nowhere", EXTS, "image")


def test_root_is_a_file(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg")
    with pytest.raises(DataError, match=r"a\.jpg: is a file, not a folder"):
        scan_folder(tmp_path / "a.jpg", EXTS, "image")


def test_empty_root(tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    with pytest.raises(DataError, match=rf"{tmp_path.name}: folder is empty"):
        scan_folder(tmp_path, EXTS, "image")


def test_files_but_no_class_folders(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "b.jpg")
    with pytest.raises(DataError, match=r"no class sub-folders \(only 2 loose files\)"):
        scan_folder(tmp_path, EXTS, "image")


def test_class_folders_without_usable_files(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/a.txt", "dog/b.txt")
    expected = r"no image files found .*\.jpg, \.png.*2 files of other types skipped, e\.g\. cat/a\.txt"
    with pytest.raises(DataError, match=expected):
        scan_folder(tmp_path, EXTS, "image")


def test_linked_folders_are_followed_without_looping(tmp_path: Path) -> None:
    _touch(tmp_path, "cat/a.jpg", "elsewhere/b.jpg", "dog/d.jpg")
    (tmp_path / "cat" / "more").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat")
    data = scan_folder(tmp_path, EXTS, "image")
    cats = [item for item, label in zip(data.items, data.labels, strict=True) if label == "cat"]
    assert _rel(tmp_path, cats) == ["cat/a.jpg", "cat/more/b.jpg"]
