"""Loading and validating a user's labelled data, and splitting it.

`load_dataset` is the one entry point: a folder is scanned (`root/<class>/<files>`, or already
split as `root/{train,val,test}/<class>/<files>`), a table file is read as a manifest of paths and
labels (CSV, TSV, Parquet, JSON Lines, JSON). `split_indices` then gives stratified splits.

Nothing is trusted: a folder scan never follows a link out of a class folder and uses each file
once (`data.folders`); a binary file is never read as text, and labels that are not valid UTF-8
are an error unless `encoding=` says how the table is encoded (`data.tables`).

Nothing is trusted: a folder scan never follows a link out of a class folder and uses each file
once (`data.folders`); a binary file is never read as text, and labels that are not valid UTF-8
are an error unless `encoding=` says how the table is encoded (`data.tables`).

Heavy libraries (pandas, PIL, torch) are imported only by the functions that need them.
"""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path

from transferkit.data.dataset import LabelledData
from transferkit.data.folders import FileCheck, scan_folder
from transferkit.data.split import split_indices
from transferkit.data.tables import (
    DEFAULT_GROUP_COLUMN,
    TableReport,
    load_manifest,
    read_table,
    require_columns,
)
from transferkit.errors import ConfigError, DataError

__all__ = [
    "LabelledData",
    "TableReport",
    "load_dataset",
    "load_labelled",
    "load_manifest",
    "read_table",
    "require_columns",
    "scan_folder",
    "split_indices",
]


def load_dataset(
    source: str | Path,
    *,
    modality: str = "image",
    path_column: str = "path",
    label_column: str = "label",
    split_column: str | None = "split",
    encoding: str | None = None,
    group_column: str | None = None,
) -> LabelledData:
    """Load labelled data from a folder of class sub-folders or from a table file.

    For a table, `path_column` holds the file paths (for text: the text itself), `label_column`
    the labels and `split_column`, when the table has it, each row's split. `encoding` says how a
    text table is encoded (e.g. "cp1252"); by default it must be UTF-8, and labels that are not
    are an error naming the rows (`data.tables`). A folder scan looks at each file's first bytes
    and lists in `unreadable`, with the reason, those that cannot be a file of `modality`
    (`folder_check`); a folder where none can be is an error saying so.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"{source}: not found; pass a folder laid out as <folder>/<class>/<files>, or a table "
            "(CSV, TSV, Parquet, JSONL, JSON) with path and label columns"
        )
    if path.is_dir():
        data = scan_folder(path, folder_extensions(modality), modality, check=folder_check(modality))
        if group_column == FOLDER_GROUPS:
            data.groups = folder_groups(data, path)
        elif group_column not in (None, DEFAULT_GROUP_COLUMN):
            raise ConfigError(f"{source} is a folder: its groups come from a folder level (group column "
                              f"'{FOLDER_GROUPS}': <class>/<group>/…), not from a column named {group_column!r}")
        return data
    if modality == "text":  # empty texts skipped and counted, non-UTF-8 rows counted (data/text_tables.py)
        from transferkit.data.text_tables import load_text_table

        return load_text_table(path, text_column=path_column, label_column=label_column, split_column=split_column,
                               encoding=encoding, group_column=group_column)
    return load_manifest(
        path,
        path_column=path_column,
        label_column=label_column,
        modality=modality,
        split_column=split_column,
        encoding=encoding,
        group_column=group_column,
    )


def load_labelled(
    source: str | Path,
    *,
    modality: str,
    path_column: str = "path",
    label_column: str = "label",
    columns: list[str] | None = None,
    path_columns: list[str] | None = None,
    encoding: str | None = None,
    group_column: str | None = DEFAULT_GROUP_COLUMN,
) -> tuple[LabelledData, list[str]]:
    """Labelled data of any modality as `fit` and `evaluate` read it, and sentences for the user about
    what was repaired on the way (bytes that were not UTF-8).

    A table (`modality="table"`) yields one row dict per item with the named `columns`; the cells of
    `path_columns` are resolved against the table's folder. `encoding` says how a text table is
    encoded when it is not UTF-8 (labels that are not valid UTF-8 are an error otherwise).
    """
    if modality == "table":
        from transferkit.data.rows import load_table_rows

        dataset, report = load_table_rows(source, columns=list(columns or []), path_columns=list(path_columns or []),
                                          label_column=label_column, encoding=encoding,
                                          group_column=group_column)
        message = report.encoding_message()
        return dataset, [message] if message else []
    dataset = load_dataset(source, modality=modality, path_column=path_column, label_column=label_column,
                           encoding=encoding, group_column=group_column)
    text_report = getattr(dataset, "report", None)  # text tables keep what reading them noticed
    message = text_report.encoding_message() if text_report is not None else None
    return dataset, [message] if message else []


#: the group "column" of a folder: the level below the class folders (DATA/<class>/<group>/…)
FOLDER_GROUPS = "folder"


def folder_groups(data: LabelledData, root: Path) -> list[str]:
    """Each file's group: the folder directly below its class folder (DATA/[split/]<class>/<group>/…)."""
    groups = []
    missing = []
    for item, label in zip(data.items, data.labels, strict=True):
        parts = Path(item).resolve().relative_to(root.resolve()).parts
        at = parts.index(label) if label in parts else (1 if data.splits else 0)
        if len(parts) - at < 3:
            missing.append(str(item))
            groups.append("")
        else:
            groups.append(parts[at + 1])
    if missing:
        raise DataError(f"{root}: with groups from folders, every file must be in DATA/<class>/<group>/; "
                        f"{len(missing)} are not (e.g. {missing[0]}). Move them into a group folder, or drop "
                        "--group-column")
    return groups


def folder_check(modality: str) -> FileCheck | None:
    """The cheap per-file check a folder scan of `modality` makes (a few header bytes per file)."""
    if modality == "image":
        from transferkit.data.images import sniff_image

        return sniff_image
    if modality == "audio":
        from transferkit.data.audio_clips import sniff_audio

        return sniff_audio
    return None


def folder_extensions(modality: str) -> Set[str]:
    """The file types a folder scan picks up for `modality`.

    Each modality's reader owns its list; a new file-based modality adds one branch here.
    """
    if modality == "image":
        from transferkit.data.images import IMAGE_EXTENSIONS

        return IMAGE_EXTENSIONS
    if modality == "audio":
        from transferkit.data.audio_clips import AUDIO_EXTENSIONS  # .wav, .flac, .ogg

        return AUDIO_EXTENSIONS
    if modality == "text":
        raise DataError(
            "text data is read from a table, not a folder: pass a CSV/TSV/Parquet/JSONL/JSON file "
            "with a text column (path_column=...) and a label column"
        )
    raise ConfigError(f"modality must be one of image, audio, text; got {modality!r}")
