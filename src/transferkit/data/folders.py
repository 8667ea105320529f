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

Links: a class folder may itself be a link (a dataset assembled from links), and links to files
are followed. Inside a class folder, a link to a folder is followed only when the folder lies
inside that class folder: a link to a folder outside or above it (`cat/up -> ..`) would put other
classes' files under this label, so it is skipped, with the reason. A file reached twice (through
a link, a hard link, or a class folder linked to another) is used once — under the path that goes
through no link, else the first in sorted order — and every other way to it is skipped, naming
the one used, so that no file is counted twice or under two labels.

With `check` (a function of a path returning why the file cannot be used, or None), each file is
also looked at cheaply: `load_dataset` passes the modality's own sniffer, which reads a few header
bytes. A folder where no file passes is an error that says so (not "too few examples in 'y'"
after a split). Otherwise the files that fail stay in `items` — reading them is where they are
skipped and counted, and where `--strict` makes them an error — and are listed, with the
reason, in `LabelledData.unreadable`, so that a message about a short class can name them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Set
from dataclasses import dataclass
from pathlib import Path

from transferkit.data.dataset import SPLITS, LabelledData, canonical_split
from transferkit.errors import DataError
from transferkit.outputs import output_kind

_IGNORED_NAMES = frozenset({"__MACOSX"})


#: a function of a file path returning why the file cannot be used, or None when it looks usable
FileCheck = Callable[[str], "str | None"]


@dataclass(frozen=True)
class _Found:
    """One file reached while scanning: where, under which class and split, and how."""

    split: str | None
    label: str
    path: str
    order: tuple[str, ...]  # the path's parts below the class folder, for sorting
    identity: tuple[int, int]  # (device, inode): the same file however it is reached
    via_link: bool


def scan_folder(
    root: str | Path, extensions: Set[str], modality: str = "image", *, check: FileCheck | None = None
) -> LabelledData:
    """Find the labelled files under `root` (see the module docstring for the layouts and links).

    `extensions` are the file types to use (".jpg", …; compared case-insensitively). Items are the
    files' absolute paths as `str`, labels their class folder names. `check`, when given, is asked
    about each file (see the module docstring). Raises `DataError` naming the folder when nothing
    usable is there.
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

    found: list[_Found] = []
    class_dirs: list[tuple[str | None, Path]] = []
    pre_split = bool(split_dirs and ("train" in named_splits or len(split_dirs) == len(dirs)))
    if pre_split:
        _check_split_layout(root, dirs, split_of)
        _skip_loose_files(files, folder, skipped)
        for split in SPLITS:
            for split_dir in (d for d in split_dirs if split_of[d] == split):
                found += _scan_classes(folder, split_dir, split, wanted, skipped, class_dirs,
                                       required=split == "train")
    else:
        found = _scan_classes(folder, folder, None, wanted, skipped, class_dirs, required=True)

    used = _once_each(found, folder, skipped)
    _report_empty_classes(class_dirs, found, used, wanted, skipped)
    unreadable: dict[str, str] = {}
    if check is not None:
        for hit in used:
            reason = check(hit.path)
            if reason is not None:
                unreadable[hit.path] = reason
    if not used or len(unreadable) == len(used):
        raise DataError(_nothing_usable(root, folder, modality, wanted, skipped, unreadable))
    return LabelledData(
        [hit.path for hit in used], [hit.label for hit in used], str(root), modality,
        splits=[str(hit.split) for hit in used] if pre_split else None, skipped=skipped,
        skipped_labels=_labels_of_skipped(class_dirs, skipped),
        unreadable=unreadable,
    )


def _labels_of_skipped(class_dirs: list[tuple[str | None, Path]], skipped: dict[str, str]) -> dict[str, str]:
    """skipped path → the class folder it sits in, for those inside one."""
    prefixes = [(str(class_dir) + os.sep, class_dir.name) for _, class_dir in class_dirs]
    return {
        path: label for path in skipped for prefix, label in prefixes if path.startswith(prefix)
    }


def _nothing_usable(
    root: str | Path, folder: Path, modality: str, wanted: frozenset[str], skipped: dict[str, str],
    unreadable: dict[str, str],
) -> str:
    """The message for a folder where no file can be used: says what was found instead."""
    def rel(path: str) -> str:
        return os.path.relpath(path, folder)

    if unreadable:
        examples = "; ".join(f"{rel(p)}: {reason}" for p, reason in list(unreadable.items())[:3])
        return (
            f"{root}: none of the {len(unreadable)} {modality} files found can be read (e.g. {examples}). "
            f"Replace or remove the unreadable files."
        )
    other_files = [path for path in skipped if not os.path.isdir(path)]
    examples = ", ".join(rel(path) for path in other_files[:3])
    return (
        f"{root}: no {modality} files found (looked for {', '.join(sorted(wanted))}); "
        f"{len(other_files)} files of other types skipped" + (f", e.g. {examples}" if examples else "")
    )


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
    root: Path, folder: Path, split: str | None, wanted: frozenset[str], skipped: dict[str, str],
    class_dirs: list[tuple[str | None, Path]], *, required: bool,
) -> list[_Found]:
    """Every file reached in `folder/<class>/…` (duplicates included; `_once_each` sorts them out).

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
    root_real = os.path.realpath(root)
    found: list[_Found] = []
    for class_dir in dirs:
        real = os.path.realpath(class_dir)
        if class_dir.is_symlink() and (real == root_real or _inside(root_real, real)):
            skipped[str(class_dir)] = (
                f"link to a folder that holds the whole dataset ({real}); not followed, so that no file "
                "is read under two labels"
            )
            continue
        made = output_kind(class_dir)
        if made:
            skipped[str(class_dir)] = _OUTPUT_SKIPPED.format(made)
            continue
        class_dirs.append((split, class_dir))
        found += [
            _Found(split, class_dir.name, path, order, identity, via_link)
            for order, path, identity, via_link in _files_under(class_dir, wanted, skipped)
        ]
    return found


#: why a folder transferkit wrote is not read as data
_OUTPUT_SKIPPED = "a folder transferkit wrote (its {} says so): its outputs are never read as data"


def _inside(path: str, folder: str) -> bool:
    """`path` lies strictly below `folder` (both real, absolute)."""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _files_under(
    class_dir: Path, wanted: frozenset[str], skipped: dict[str, str]
) -> list[tuple[tuple[str, ...], str, tuple[int, int], bool]]:
    """(parts below the class folder, path, file identity, reached through a link) for every file of
    a wanted type below `class_dir`, sorted; links to folders outside it are skipped (module docstring)."""
    class_real = os.path.realpath(class_dir)
    accepted = ", ".join(sorted(wanted))
    found: list[tuple[tuple[str, ...], str, tuple[int, int], bool]] = []
    walked_links: dict[str, str] = {}  # real folder → the link it was walked through
    # iterative, so that deep trees cannot exhaust Python's recursion limit; each entry carries the
    # folder's real path, so that only links need resolving
    stack: list[tuple[str, tuple[str, ...], bool, str]] = [(str(class_dir), (), class_dir.is_symlink(), class_real)]
    while stack:
        dirpath, parts, via_link, real_dir = stack.pop()
        try:
            entries = sorted(os.scandir(dirpath), key=lambda e: e.name)
        except OSError as exc:
            skipped[dirpath] = f"cannot list the folder ({exc.strerror or exc})"
            continue
        for entry in entries:
            if _hidden(entry.name):
                continue
            path = entry.path
            try:
                is_link = entry.is_symlink()
                if not is_link and entry.is_dir(follow_symlinks=False):
                    made = output_kind(path)
                    if made:
                        skipped[path] = _OUTPUT_SKIPPED.format(made)
                        continue
                    stack.append((path, (*parts, entry.name), via_link, os.path.join(real_dir, entry.name)))
                    continue
                if is_link:
                    real = os.path.realpath(path)
                    if os.path.isdir(real):
                        reason = _why_not_followed(real, class_real, real_dir, walked_links)
                        if reason:
                            skipped[path] = reason
                        else:
                            walked_links[real] = path
                            stack.append((path, (*parts, entry.name), True, real))
                        continue
                    if not os.path.exists(path):
                        skipped[path] = "broken link: its target does not exist"
                        continue
                suffix = os.path.splitext(entry.name)[1].lower()
                if suffix not in wanted:
                    skipped[path] = (
                        f"file type '{suffix}' is not one of {accepted}"
                        if suffix
                        else f"file has no extension (expected one of {accepted})"
                    )
                    continue
                info = os.stat(path)
            except OSError as exc:
                skipped[path] = f"cannot read it ({exc.strerror or exc})"
                continue
            if not _is_regular(info.st_mode):
                skipped[path] = "not a regular file (a device, socket or pipe)"
                continue
            found.append(((*parts, entry.name), path, (info.st_dev, info.st_ino), via_link or is_link))
    return sorted(found)


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _why_not_followed(real: str, class_real: str, real_dir: str, walked: dict[str, str]) -> str | None:
    """Why a link (in the folder whose real path is `real_dir`) to the folder `real` is not followed."""
    inside = _inside(real, class_real)
    if real == class_real or (inside and (real == real_dir or _inside(real_dir, real))):
        return f"link to a folder it is itself in ({real}), a loop; not followed"
    if not inside:
        return (
            f"link to a folder outside the class folder or above it ({real}); not followed, so that "
            "no file is read twice or under a label it does not have"
        )
    if real in walked:
        return f"link to a folder already scanned through '{walked[real]}'; not followed"
    return None


def _once_each(found: list[_Found], root: Path, skipped: dict[str, str]) -> list[_Found]:
    """Each file once: the way to it that goes through no link, else the first; the rest skipped."""
    by_file: dict[tuple[int, int], list[_Found]] = {}
    for hit in found:
        by_file.setdefault(hit.identity, []).append(hit)
    keep: set[int] = set()
    for hits in by_file.values():
        chosen = next((h for h in hits if not h.via_link), hits[0])
        keep.add(id(chosen))
        for other in hits:
            if other is not chosen:
                where = f"class '{chosen.label}'" + (f", split '{chosen.split}'" if chosen.split else "")
                skipped[other.path] = (
                    f"the same file as {os.path.relpath(chosen.path, root)} ({where}), reached another "
                    "way (a link or a hard link); a file is used once"
                )
    return [hit for hit in found if id(hit) in keep]


def _report_empty_classes(
    class_dirs: list[tuple[str | None, Path]], found: list[_Found], used: list[_Found],
    wanted: frozenset[str], skipped: dict[str, str],
) -> None:
    """A class folder none of whose files is used is itself listed in `skipped`, saying why."""
    used_classes = {(hit.split, hit.label) for hit in used}
    reached: dict[tuple[str | None, str], list[_Found]] = {}
    for hit in found:
        reached.setdefault((hit.split, hit.label), []).append(hit)
    for split, class_dir in class_dirs:
        if (split, class_dir.name) in used_classes:
            continue
        hits = reached.get((split, class_dir.name), [])
        if hits:
            skipped[str(class_dir)] = "class folder holds only files already used under another path"
        else:
            skipped[str(class_dir)] = f"class folder holds no usable files (none of {', '.join(sorted(wanted))})"
