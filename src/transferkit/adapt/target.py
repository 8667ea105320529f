"""Reading TARGET: unlabelled inputs from where the model will be used (`fit --adapt-to TARGET`).

TARGET holds inputs of the training data's modality, in whatever layout they come:

- images or audio clips: a folder in any layout (every file of the modality under it, sub-folders
  included, hidden ones skipped), one file, or a table with a path column (relative paths are read
  from the table's folder);
- texts: a plain text file (one input per non-blank line) or a table with a text column;
- table rows: a table with the model's input columns.

Labels are never read: a label column, or class sub-folders, are ignored and `labels_ignored` says
so (the fit summary shows it). Inputs that cannot be read are skipped, counted and named in
`skipped` (`strict=True` makes the first one an error, and feature extraction adds those it cannot
decode). A TARGET that does not exist, holds nothing of the modality, or holds another modality's
files is a `DataError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transferkit.errors import DataError, InputError
from transferkit.jsontypes import JSONObject

#: a table column that holds labels; present in TARGET, it is ignored (and the summary says so)
LABEL_COLUMNS = ("label", "labels", "class", "target", "y")


@dataclass
class TargetInputs:
    """The target's unlabelled inputs, a name for each, and what reading them noticed."""

    source: str
    modality: str
    items: list[object]
    names: list[str]
    #: input name -> why it was skipped
    skipped: dict[str, str] = field(default_factory=dict)
    #: what in TARGET looked like labels and was not read (None when nothing did)
    labels_ignored: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def summary(self) -> JSONObject:
        out: JSONObject = {"target": self.source, "target_inputs": len(self.items),
                               "target_skipped": len(self.skipped)}
        if self.labels_ignored:
            out["target_labels"] = f"ignored ({self.labels_ignored})"
        return out


def _extensions() -> dict[str, frozenset[str]]:
    from transferkit.data.audio_clips import AUDIO_EXTENSIONS
    from transferkit.data.images import IMAGE_EXTENSIONS
    from transferkit.data.tables import TABLE_FORMATS

    return {"image": frozenset(IMAGE_EXTENSIONS), "audio": frozenset(AUDIO_EXTENSIONS),
            "table": frozenset(TABLE_FORMATS), "text": frozenset({".txt", ".text"})}


def _kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return next((kind for kind, exts in _extensions().items() if suffix in exts), None)


def _files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):  # links are not followed out of TARGET
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return found


def _refuse(source: str, modality: str, problem: str) -> DataError:
    takes = {"image": "image files (a folder in any layout, or a table with a 'path' column)",
             "audio": "audio clips (a folder in any layout, or a table with a 'path' column)",
             "text": "texts (a text file with one per line, or a table with a text column)",
             "table": "rows with the training table's input columns"}[modality]
    return DataError(f"--adapt-to {source}: {problem}; the training data is {modality}, so TARGET must hold "
                     f"unlabelled {takes}")


def read_target(
    source: str | Path,
    modality: str,
    *,
    path_column: str = "path",
    text_column: str = "text",
    columns: Sequence[str] = (),
    path_columns: Sequence[str] = (),
    label_column: str | None = None,
    encoding: str | None = None,
    strict: bool = False,
    argument: str = "--adapt-to",
) -> TargetInputs:
    """The unlabelled inputs in TARGET for a model of `modality` ('image', 'audio', 'text', 'table').
    `label_column`: the training data's label column, ignored in a TARGET table like `LABEL_COLUMNS`.
    `argument`: how the user gave TARGET (`--adapt-to`, or `shift`'s TARGET), named in every error."""
    try:
        return _read_target(source, modality, path_column=path_column, text_column=text_column, columns=columns,
                            path_columns=path_columns, label_column=label_column, encoding=encoding, strict=strict)
    except DataError as exc:  # every error of this module starts with the flag it was read for
        if argument == "--adapt-to" or not str(exc).startswith("--adapt-to"):
            raise
        raise DataError(argument + str(exc).removeprefix("--adapt-to")) from exc


def _read_target(
    source: str | Path,
    modality: str,
    *,
    path_column: str,
    text_column: str,
    columns: Sequence[str],
    path_columns: Sequence[str],
    label_column: str | None,
    encoding: str | None,
    strict: bool,
) -> TargetInputs:
    path = Path(source)
    name = str(source)
    if modality not in ("image", "audio", "text", "table"):
        raise DataError(f"--adapt-to: cannot read a target for {modality!r} data")
    if not path.exists():
        raise _refuse(name, modality, "not found")
    if path.is_dir():
        got = _from_folder(path, modality)
    elif _kind_of(path) == "table":
        got = _from_table(path, modality, path_column=path_column, text_column=text_column, columns=columns,
                          path_columns=path_columns, label_column=label_column, encoding=encoding)
    else:
        got = _from_file(path, modality, encoding=encoding)
    if got.skipped and strict:
        first, reason = next(iter(got.skipped.items()))
        raise DataError(f"--adapt-to {name}: {len(got.skipped)} input(s) cannot be read (--strict); first: "
                        f"{first}: {reason}")
    if not got.items:
        detail = f" ({len(got.skipped)} unreadable, e.g. {next(iter(got.skipped.items()))[1]})" if got.skipped else ""
        raise _refuse(name, modality, f"no readable input{detail}")
    return got


def _from_folder(folder: Path, modality: str) -> TargetInputs:
    name = str(folder)
    if modality in ("text", "table"):
        raise _refuse(name, modality, "is a folder")
    files = _files(folder)
    if not files:
        raise _refuse(name, modality, "is empty")
    kinds: dict[str | None, list[Path]] = {}
    for f in files:
        kinds.setdefault(_kind_of(f), []).append(f)
    mine = kinds.get(modality, [])
    if not mine:
        others = sorted((k for k in kinds if k is not None), key=lambda k: -len(kinds[k]))
        problem = (f"holds {len(kinds[others[0]])} {others[0]} file(s) and no {modality} file" if others
                   else f"holds {len(files)} file(s), none of them {modality} (e.g. {files[0].name})")
        raise _refuse(name, modality, problem)
    from transferkit.data import folder_check

    check = folder_check(modality)
    paths: list[str] = []
    skipped: dict[str, str] = {}
    for f in mine:
        reason = check(str(f)) if check is not None else None
        if reason is None:
            paths.append(str(f))
        else:
            skipped[str(f)] = reason
    nested = any(f.parent != folder for f in mine)
    got = TargetInputs(name, modality, list[object](paths), list(paths), skipped,
                       labels_ignored="sub-folder names are not read as classes" if nested else None)
    ignored = len(files) - len(mine)
    if ignored:
        got.notes.append(f"{ignored} file(s) in TARGET that are not {modality} were left out")
    return got


def _from_table(path: Path, modality: str, *, path_column: str, text_column: str, columns: Sequence[str],
                path_columns: Sequence[str], label_column: str | None, encoding: str | None) -> TargetInputs:
    from transferkit.data.tables import read_table, require_columns

    name = str(path)
    frame, report = read_table(path, as_text=True, encoding=encoding)
    labels = next((c for c in frame.columns if str(c).lower() in LABEL_COLUMNS or c == label_column), None)
    ignored = f"column '{labels}'" if labels is not None else None
    if modality == "table":
        from transferkit.data.rows import read_rows

        rows, row_names = read_rows([name], [], columns=list(columns), path_columns=path_columns,
                                    encoding=encoding)
        return TargetInputs(name, modality, list(rows), row_names, labels_ignored=ignored)
    column = text_column if modality == "text" else path_column
    if column not in frame.columns and modality == "text" and path_column in frame.columns:
        column = path_column
    require_columns(frame, [column], name)
    items: list[object] = []
    names: list[str] = []
    skipped: dict[str, str] = {}
    base = os.path.abspath(path.parent)
    for i, value in enumerate(frame[column]):
        row = f"{name}:{report.row_name(i)}"
        text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
        if modality == "text":
            if text.strip():
                items.append(text)
                names.append(row)
            else:
                skipped[row] = "empty text"
            continue
        if not text.strip():
            skipped[row] = f"empty '{column}' cell"
            continue
        file = Path(os.path.normpath(os.path.join(base, os.path.expanduser(text))))
        kind = _kind_of(file)
        if kind not in (None, modality):
            raise _refuse(name, modality, f"{report.row_name(i)} names {kind} file '{text}'")
        if not file.is_file():
            skipped[row] = f"'{text}' does not exist"
            continue
        items.append(str(file))
        names.append(str(file))
    return TargetInputs(name, modality, items, names, skipped, labels_ignored=ignored)


def _from_file(path: Path, modality: str, *, encoding: str | None) -> TargetInputs:
    name = str(path)
    kind = _kind_of(path)
    if modality == "text":
        if kind in ("image", "audio"):
            raise _refuse(name, modality, f"is an {kind} file")
        from transferkit.data.text_tables import read_text_file

        try:
            text = read_text_file(path, encoding=encoding)
        except InputError as exc:
            raise _refuse(name, modality, f"cannot be read as text ({exc})") from exc
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return TargetInputs(name, modality, [line for _, line in lines], [f"{name}:line {n}" for n, _ in lines])
    if modality == "table":
        raise _refuse(name, modality, "is not a table file (CSV, TSV, Parquet, JSONL, JSON)")
    if kind != modality:
        raise _refuse(name, modality, f"is {'an ' + kind if kind else 'not an ' + modality} file")
    from transferkit.data import folder_check

    check = folder_check(modality)
    reason = check(str(path)) if check is not None else None
    if reason is not None:
        return TargetInputs(name, modality, [], [], {name: reason})
    return TargetInputs(name, modality, [name], [name])
