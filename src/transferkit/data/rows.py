"""Rows of a multimodal table: each input is a dict of column → cell (paths, text, numbers, categories).

`load_table_rows` reads a labelled table for `fit`; `read_rows` reads the rows `predict` takes
(tables of the same shape, or JSON objects given with `--row`). File-path columns (image,
audio) are made absolute against the table's own folder, as manifests are; an empty cell stays
empty and a path to a file that does not exist is kept as is: the column encoders give both a
zero embedding and a set missing-mask, and count them, rather than failing the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from transferkit.data.dataset import LabelledData, canonical_split
from transferkit.data.tables import TableReport, check_labels, read_groups, read_table, require_columns
from transferkit.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

#: one row of a multimodal table: column → cell (the cell's text, a JSON number from `--row`, or None
#: when missing); the column encoders read the cells, this module only passes them on
Row: TypeAlias = dict[str, object]


def _cell(value: object) -> object:
    """A cell as read (text), or None when missing (NaN, None, empty or blank)."""
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value))):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def resolve_path(value: object, base: Path | None) -> object:
    """An absolute path for a non-empty relative path cell (against `base`, else the working folder)."""
    if not isinstance(value, str) or not value:
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return os.path.normpath(expanded)
    return os.path.normpath(os.path.join(os.path.abspath(base or Path.cwd()), expanded))


def _rows(frame: pd.DataFrame, columns: Sequence[str], path_columns: Iterable[str], base: Path | None) -> list[Row]:
    paths = set(path_columns)
    records = []
    for values in zip(*(frame[c] for c in columns), strict=True):
        row = {c: _cell(v) for c, v in zip(columns, values, strict=True)}
        for c in paths & set(row):
            row[c] = resolve_path(row[c], base)
        records.append(row)
    return records


def load_table_rows(
    path: str | Path,
    *,
    columns: Sequence[str],
    path_columns: Iterable[str],
    label_column: str = "label",
    split_column: str | None = "split",
    encoding: str | None = None,
    group_column: str | None = None,
) -> tuple[LabelledData, TableReport]:
    """A labelled multimodal table as `LabelledData` whose items are dicts of the used columns.

    Raises `DataError` listing the table's columns when one asked for is missing, and naming the
    rows without a label or with a label that is not valid UTF-8 (`encoding` says how the file is
    encoded otherwise). Missing cells are kept as None (the encoders mask them).
    """
    frame, report = read_table(path, as_text=True, encoding=encoding)
    source = str(path)
    require_columns(frame, [*columns, label_column], source)
    labels = ["" if _cell(v) is None else str(v).strip() for v in frame[label_column]]
    check_labels(labels, report, label_column)
    bad = [i for i, label in enumerate(labels) if not label]
    if bad:
        raise DataError(
            f"{source}: {len(bad)} of {report.rows} rows have no label in column '{label_column}': "
            f"{', '.join(report.row_name(i) for i in bad[:5])} ({report.numbering}). Fill them in or remove those rows."
        )
    splits = None
    if split_column is not None and split_column in frame.columns:
        raw = ["" if _cell(v) is None else str(v) for v in frame[split_column]]
        canon = [canonical_split(v) for v in raw]
        if any(s is None for s in canon):
            i = next(i for i, s in enumerate(canon) if s is None)
            raise DataError(f"{source}: {report.row_name(i)} has an unknown split {raw[i]!r} in column "
                            f"'{split_column}'; use train, val or test")
        splits = [str(s) for s in canon]
    items = _rows(frame, list(columns), path_columns, Path(path).parent)
    groups = read_groups(frame, group_column, report, source)
    return LabelledData(items=items, labels=labels, source=source, modality="table", splits=splits,
                        groups=groups), report


def read_rows(
    inputs: Sequence[str],
    row_json: Sequence[str],
    *,
    columns: Sequence[str],
    path_columns: Iterable[str],
    encoding: str | None = None,
) -> tuple[list[Row], list[str]]:
    """Rows for `predict`: tables (paths relative to each table's folder) and `--row` JSON objects.

    Returns the rows and a display name for each. A table must have every column the model was
    trained on (the error lists what it has); a `--row` may leave columns out (they are missing).
    `encoding` says how the tables are encoded when they are not UTF-8.
    """
    rows: list[Row] = []
    names: list[str] = []
    for raw in inputs:
        path = Path(raw)
        if not path.is_file():
            raise DataError(f"{raw}: not a file; a table model predicts on a table of rows (CSV, TSV, Parquet, "
                            "JSONL, JSON) or on --row '{\"column\": value, …}'")
        frame, report = read_table(path, as_text=True, encoding=encoding)
        require_columns(frame, list(columns), str(path))
        rows += _rows(frame, list(columns), path_columns, path.parent)
        names += [f"{path}:{report.row_name(i)}" for i in range(len(frame))]
    for number, text in enumerate(row_json, start=1):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"--row {number} is not valid JSON ({exc.msg}): {text[:80]}") from exc
        if not isinstance(record, dict):
            raise DataError(f"--row {number} must be a JSON object such as '{{\"title\": \"…\", \"price\": 3}}'")
        unknown = sorted(set(record) - set(columns))
        if unknown:
            raise DataError(f"--row {number} has columns the model was not trained on: {', '.join(unknown)}; "
                            f"it uses: {', '.join(columns)}")
        row = {c: _cell(record.get(c)) for c in columns}
        for c in set(path_columns) & set(row):
            row[c] = resolve_path(row[c], None)
        rows.append(row)
        names.append(f"--row {number}")
    return rows, names
