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


def test_links_inside_a_class_are_followed_once_and_links_out_of_it_are_skipped(tmp_path: Path) -> None:
    """Issue 12 item 3: a link to a folder outside the class folder (here another class) is not
    followed; a link back into the class folder loops no more and counts nothing twice."""
    _touch(tmp_path, "cat/a.jpg", "cat/sub/s.jpg", "elsewhere/b.jpg", "dog/d.jpg")
    (tmp_path / "cat" / "more").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat")
    (tmp_path / "cat" / "alias").symlink_to(tmp_path / "cat" / "sub")
    data = scan_folder(tmp_path, EXTS, "image")
    assert sorted(_rel(tmp_path, data.items)) == ["cat/a.jpg", "cat/sub/s.jpg", "dog/d.jpg", "elsewhere/b.jpg"]
    assert "outside the class folder" in data.skipped[str(tmp_path / "cat" / "more")]
    assert "loop" in data.skipped[str(tmp_path / "cat" / "loop")]
    alias = {k: v for k, v in data.skipped.items() if "alias" in k}
    assert len(alias) == 1 and ("same file as cat/sub/s.jpg" in next(iter(alias.values()))
                                or "already scanned" in next(iter(alias.values())))


def test_a_link_up_to_the_dataset_does_not_relabel_every_file(tmp_path: Path) -> None:
    """Issue 12 item 3: `good/c0/up -> ..` made every image of every class count as c0 as well."""
    _touch(tmp_path, "c0/a.jpg", "c0/b.jpg", "c1/c.jpg", "c1/d.jpg", "c2/e.jpg")
    (tmp_path / "c0" / "up").symlink_to("..")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == ["c0/a.jpg", "c0/b.jpg", "c1/c.jpg", "c1/d.jpg", "c2/e.jpg"]
    assert data.labels == ["c0", "c0", "c1", "c1", "c2"]
    reason = data.skipped[str(tmp_path / "c0" / "up")]
    assert "outside the class folder" in reason and "not followed" in reason


def test_a_file_reached_twice_is_counted_once(tmp_path: Path) -> None:
    """Issue 12 item 3: a class folder linked to another, a split linked to another and a hard link
    reach the same file twice; it is used once, and the other way to it is skipped naming it."""
    _touch(tmp_path, "train/cat/a.jpg", "train/cat/b.jpg", "train/dog/c.jpg", "train/dog/d.jpg")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "cat").symlink_to(tmp_path / "train" / "cat")
    (tmp_path / "train" / "kitten").symlink_to(tmp_path / "train" / "cat")
    os.link(tmp_path / "train" / "dog" / "c.jpg", tmp_path / "train" / "dog" / "z-hardlink.jpg")
    data = scan_folder(tmp_path, EXTS, "image")
    assert _rel(tmp_path, data.items) == ["train/cat/a.jpg", "train/cat/b.jpg", "train/dog/c.jpg", "train/dog/d.jpg"]
    assert data.splits == ["train"] * 4
    assert "same file as train/cat/a.jpg (class 'cat', split 'train')" in data.skipped[str(tmp_path / "test/cat/a.jpg")]
    assert "same file as train/cat/b.jpg" in data.skipped[str(tmp_path / "train/kitten/b.jpg")]
    assert "same file as train/dog/c.jpg" in data.skipped[str(tmp_path / "train/dog/z-hardlink.jpg")]
    assert "already used" in data.skipped[str(tmp_path / "train/kitten")]


def test_a_class_folder_may_itself_be_a_link(tmp_path: Path) -> None:
    """Issue 12 item 3: a dataset assembled from links to class folders elsewhere still works;
    a class-folder link to the dataset itself is skipped."""
    _touch(tmp_path, "store/cats/a.jpg", "data/dog/d.jpg")
    (tmp_path / "data" / "cat").symlink_to(tmp_path / "store" / "cats")
    (tmp_path / "data" / "everything").symlink_to(tmp_path / "data")
    (tmp_path / "data" / "dog" / "linked.jpg").symlink_to(tmp_path / "store" / "cats" / "a.jpg")
    data = scan_folder(tmp_path / "data", EXTS, "image")
    assert _rel(tmp_path / "data", data.items) == ["cat/a.jpg", "dog/d.jpg"]
    assert "holds the whole dataset" in data.skipped[str(tmp_path / "data" / "everything")]
    assert "same file as cat/a.jpg" in data.skipped[str(tmp_path / "data" / "dog" / "linked.jpg")]


def test_broken_links_and_deep_trees(tmp_path: Path) -> None:
    """Issue 12 item 3: a broken link is skipped with a reason; a very deep tree does not overflow."""
    _touch(tmp_path, "cat/a.jpg", "dog/d.jpg")
    (tmp_path / "cat" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "cat" / "gone-dir").symlink_to(tmp_path / "nowhere")
    deep = tmp_path / "dog"
    for _ in range(400):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "deep.jpg").write_bytes(b"x")
    import inspect
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)  # the scan must not recurse per folder level
    try:
        data = scan_folder(tmp_path, EXTS, "image")
    finally:
        sys.setrecursionlimit(limit)
    assert len(data) == 3 and data.labels == ["cat", "dog", "dog"]
    assert "broken link" in data.skipped[str(tmp_path / "cat" / "gone.jpg")]
    assert "broken link" in data.skipped[str(tmp_path / "cat" / "gone-dir")]


# -- the cheap check at scan time (issue 12 item 10) ----------------------------------------------


def _real_jpeg(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (10, 200, 10)).save(path, format="JPEG")


def test_a_folder_of_only_unreadable_files_says_so(tmp_path: Path) -> None:
    """Issue 12 item 10: a folder of only unreadable files was reported as "too few in 'y' (1)"."""
    from transferkit.data import load_dataset

    for name in ("x/0.jpg", "x/1.jpg", "x/2.jpg", "y/0.jpg", "y/1.jpg", "y/2.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"not an image")
    (tmp_path / "y" / "3.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"none of the 7 image files found can be read.*not an image") as info:
        load_dataset(tmp_path)
    assert "too few" not in str(info.value)


def test_unreadable_files_are_flagged_at_scan_and_named_when_a_class_is_short(tmp_path: Path) -> None:
    """Issue 12 item 10: files that cannot be images are flagged with the reason while scanning (reading
    them is still where they are skipped and counted, or --strict fails), and a class left short of
    readable files says which of its files cannot be read."""
    from transferkit.data import load_dataset

    for name in ("x/0.jpg", "x/1.jpg", "y/0.jpg", "z/0.jpg", "z/1.jpg"):
        _real_jpeg(tmp_path / name)
    (tmp_path / "y" / "1.jpg").write_bytes(b"%PDF-1.4 a report")
    (tmp_path / "y" / "2.jpg").write_bytes(b"")
    (tmp_path / "y" / "notes.txt").write_text("not an image type")
    data = load_dataset(tmp_path)
    assert data.class_counts() == {"x": 2, "y": 3, "z": 2}
    assert "a PDF document" in data.unreadable[str(tmp_path / "y" / "1.jpg")]
    assert "empty file" in data.unreadable[str(tmp_path / "y" / "2.jpg")]
    expected = (r"too few in 'y' \(1; 2 of them cannot be read, e\.g\. .*1\.jpg: not an image \(a PDF document\); "
                r"1 more skipped")
    with pytest.raises(DataError, match=expected):
        data.validate_for_training()
    train = data.subset([0, 1, 3, 4, 5])
    assert sorted(train.unreadable) == [str(tmp_path / "y" / "1.jpg"), str(tmp_path / "y" / "2.jpg")]
