"""Labelled data laid out as folders: the class is the name of the folder a file sits in.

Two layouts are understood, the ones Keras' `image_dataset_from_directory` and torchvision's
`ImageFolder` made common:

    root/<class>/<files>                      one pool, split later by `split_indices`
    root/{train,val,test}/<class>/<files>     already split (`val` may be named `valid` or
                                              `validation`; `train` is required)

Files may sit in nested folders inside a class folder; they belong to that class. Hidden files and
folders (".DS_Store", ".git", "._photo.jpg") and macOS' "__MACOSX" are ignored. Everything else
that is not used — a file of another type, a file next to the class folders rather than in one, an
empty class folder — is listed in `LabelledData.skipped` with the reason, so that nothing
disappears silently. The order is sorted and so the same on every machine.
"""

from __future__ import annotations

import os
from collections.abc import Set
from pathlib import Path

from transferkit.data.dataset import SPLITS, LabelledData, canonical_split
from transferkit.errors import DataError

_IGNORED_NAMES = frozenset({"__MACOSX"})


def scan_folder(root: str | Path, extensions: Set[str], modality: str = "image") -> LabelledData:
    """Find the labelled files under `root` (see the module docstring for the layouts).

    `extensions` are the file types to use (".jpg", …; compared case-insensitively). Items are the
    files' absolute paths as `str`, labels their class folder names. Raises `DataError` naming the
    folder when nothing usable is there.
    """
    folder = Path(root)
    if not folder.exists():
        raise DataError(f"{root}: folder not found; check the path")
    if not folder.is_dir():
        raise DataError(
            f"{root}: is a file, not a folder; pass a folder laid out as root/<class>/<files>, "
            "or a table (CSV, Parquet, JSONL) with path and label columns"
        )
    folder = Path(os.path.abspath(folder))
    wanted = frozenset(ext.lower() for ext in extensions)
    skipped: dict[str, str] = {}

    dirs, files = _children(folder)
    if not dirs and not files:
        raise DataError(f"{root}: folder is empty; expected one sub-folder per class: root/<class>/<files>")
    split_of = {d: canonical_split(d.name) for d in dirs}
    split_dirs = [d for d in dirs if split_of[d]]
    named_splits = {split_of[d] for d in split_dirs}

    if split_dirs and ("train" in named_splits or len(split_dirs) == len(dirs)):
        _check_split_layout(root, dirs, split_of)
        _skip_loose_files(files, folder, skipped)
        items: list[str] = []
        labels: list[str] = []
        splits: list[str] = []
        for split in SPLITS:
            for split_dir in (d for d in split_dirs if split_of[d] == split):
                found = _scan_classes(split_dir, wanted, skipped, required=split == "train")
                items += [path for _, path in found]
                labels += [label for label, _ in found]
                splits += [split] * len(found)
        result = LabelledData(items, labels, str(root), modality, splits=splits, skipped=skipped)
    else:
        found = _scan_classes(folder, wanted, skipped, required=True)
        result = LabelledData(
            [path for _, path in found], [label for label, _ in found], str(root), modality, skipped=skipped
        )

    if len(result) == 0:
        other_files = [path for path in skipped if not os.path.isdir(path)]
        examples = ", ".join(os.path.relpath(path, folder) for path in other_files[:3])
        raise DataError(
            f"{root}: no {modality} files found (looked for {', '.join(sorted(wanted))}); "
            f"{len(other_files)} files of other types skipped"
            + (f", e.g. {examples}" if examples else "")
        )
    return result


def _children(folder: Path) -> tuple[list[Path], list[Path]]:
    """Visible sub-folders and files of `folder`, each sorted by name."""
    try:
        entries = sorted(p for p in folder.iterdir() if not _hidden(p.name))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from exc
    dirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if not p.is_dir()]
    return dirs, files


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def _check_split_layout(root: str | Path, dirs: list[Path], split_of: dict[Path, str | None]) -> None:
    """A split layout has a train folder, nothing but split folders, and each split once."""
    others = [d.name for d in dirs if not split_of[d]]
    named = [d.name for d in dirs if split_of[d]]
    if others:
        raise DataError(
            f"{root}: mixes split folders ({', '.join(named)}) with other folders ({', '.join(others)}); "
            "use either root/<class>/<files> or root/{train,val,test}/<class>/<files>"
        )
    if "train" not in split_of.values():
        raise DataError(
            f"{root}: has split folders ({', '.join(named)}) but no 'train' folder; "
            "add root/train/<class>/<files>, or rename the folders if they are classes"
        )
    for split in SPLITS:
        same = [d.name for d in dirs if split_of[d] == split]
        if len(same) > 1:
            raise DataError(f"{root}: folders {', '.join(same)} all name the '{split}' split; keep one")


def _skip_loose_files(files: list[Path], folder: Path, skipped: dict[str, str]) -> None:
    for path in files:
        skipped[str(path)] = f"file directly in {folder}, not inside a class folder"


def _scan_classes(
    folder: Path, wanted: frozenset[str], skipped: dict[str, str], *, required: bool
) -> list[tuple[str, str]]:
    """(class, path) for every usable file in `folder/<class>/…`, sorted by class then path.

    A `folder` with no class sub-folders is an error when `required`, else skipped (an empty
    optional split folder).
    """
    dirs, files = _children(folder)
    if not dirs:
        if required:
            detail = f"only {len(files)} loose files" if files else "it is empty"
            raise DataError(
                f"{folder}: no class sub-folders ({detail}); put each class's files in a sub-folder "
                f"named after the class: {folder}/<class>/<file>"
            )
        skipped[str(folder)] = "split folder holds no class sub-folders"
        return []
    _skip_loose_files(files, folder, skipped)
    found: list[tuple[str, str]] = []
    for class_dir in dirs:
        paths = _files_under(class_dir, wanted, skipped)
        if not paths:
            accepted = ", ".join(sorted(wanted))
            skipped[str(class_dir)] = f"class folder holds no usable files (none of {accepted})"
        found += [(class_dir.name, path) for path in paths]
    return found


def _files_under(class_dir: Path, wanted: frozenset[str], skipped: dict[str, str]) -> list[str]:
    """Usable files anywhere below `class_dir` (following links, never looping), sorted."""
    found: list[tuple[tuple[str, ...], str]] = []
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link back to a folder already walked
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in filenames:
            if _hidden(name):
                continue
            path = os.path.join(dirpath, name)
            suffix = os.path.splitext(name)[1].lower()
            if suffix not in wanted:
                accepted = ", ".join(sorted(wanted))
                skipped[path] = (
                    f"file type '{suffix}' is not one of {accepted}"
                    if suffix
                    else f"file has no extension (expected one of {accepted})"
                )
            elif not os.path.isfile(path):
                skipped[path] = "not a regular file (a broken link?)"
            else:
                found.append((Path(os.path.relpath(path, class_dir)).parts, path))
    return [path for _, path in sorted(found)]
