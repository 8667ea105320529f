"""Text data: labelled tables of texts for `fit`, and the inputs `predict` accepts for a text model.

A text dataset is a table (CSV, TSV, Parquet, JSON Lines, JSON) with a text column and a label
column. What `read_table` repairs in texts is kept and counted: bytes that are not UTF-8 are
decoded as U+FFFD and the rows affected are counted in the `TableReport`; in labels they are an
error naming the rows (they would merge classes), unless `encoding=` says how the file is
encoded. Empty texts (missing or blank cells) carry no signal: they are left out of training and
counted in `skipped`, by the row a user finds in the file, instead of failing the whole run or
training on blank strings unawares.

At predict time a text model takes literal strings, plain text files (one example per line;
blank lines are counted and left out) and tables with the text column. A binary file (a photo,
an archive, anything holding NUL bytes) is never read as lines of text: it is an `InputError`
naming the file and what it looks like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transferkit.data.dataset import LabelledData
from transferkit.data.tables import (
    TABLE_FORMATS,
    TableReport,
    check_labels,
    decode_text,
    read_groups,
    read_table,
    require_columns,
)
from transferkit.errors import DataError, InputError


@dataclass
class TextData(LabelledData):
    """`LabelledData` of texts, with what reading the table noticed (encoding repairs, empty texts)."""

    report: TableReport | None = None
    empty_rows: int = 0

    def notes(self) -> dict[str, int]:
        """Counts a user should see after fit: rows with replaced bytes, empty texts left out."""
        replaced = self.report.replaced_rows if self.report else 0
        return {"non_utf8_rows": replaced, "empty_texts": self.empty_rows}


def _cell(value: object) -> str:
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value))):
        return ""
    return str(value)


def load_text_table(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split_column: str | None = "split",
    encoding: str | None = None,
    group_column: str | None = None,
) -> TextData:
    """Read a labelled text table; rows with an empty text are skipped and counted, not fatal.

    A missing column raises `DataError` listing the columns the table has. A row without a label
    is an error (a label cannot be guessed), and so is a label that is not valid UTF-8 unless
    `encoding` says how the file is encoded; a row without text is skipped (`skipped`,
    `empty_rows`). Non-UTF-8 bytes in texts are replaced and counted in `report.replaced_rows`.
    """
    from transferkit.data.dataset import canonical_split

    frame, report = read_table(path, as_text=True, encoding=encoding)
    source = str(path)
    require_columns(frame, [text_column, label_column], source)
    texts = [_cell(v) for v in frame[text_column]]
    labels = [_cell(v).strip() for v in frame[label_column]]
    check_labels(labels, report, label_column)
    no_label = [i for i, label in enumerate(labels) if not label]
    if no_label:
        shown = ", ".join(report.row_name(i) for i in no_label[:5])
        raise DataError(
            f"{source}: {len(no_label)} of {report.rows} rows have no label in column '{label_column}': "
            f"{shown}{', …' if len(no_label) > 5 else ''} ({report.numbering}). Fill them in or remove those rows."
        )
    keep = [i for i, text in enumerate(texts) if text.strip()]
    skipped = {
        f"{source} {report.row_name(i)}": f"{source} {report.row_name(i)}: empty text in column '{text_column}'"
        for i in range(len(texts)) if not texts[i].strip()
    }
    splits = None
    if split_column is not None and split_column in frame.columns:
        raw = [_cell(v) for v in frame[split_column]]
        canon = [canonical_split(v) for v in raw]
        bad = [i for i, s in enumerate(canon) if s is None]
        if bad:
            raise DataError(
                f"{source}: {len(bad)} rows have an unknown split in column '{split_column}' (e.g. "
                f"{report.row_name(bad[0])} {raw[bad[0]]!r}); use train, val or test"
            )
        splits = [str(canon[i]) for i in keep]
    data = TextData(
        items=[texts[i] for i in keep],
        labels=[labels[i] for i in keep],
        source=source,
        modality="text",
        splits=splits,
        groups=read_groups(frame, group_column, report, source, keep),
        skipped=skipped,
        report=report,
        empty_rows=len(texts) - len(keep),
    )
    return data


@dataclass
class TextInputs:
    """Texts to classify, a display name for each, and what was left out or repaired."""

    texts: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    empty: int = 0
    non_utf8: int = 0


def read_text_inputs(
    inputs: Sequence[str], *, text_column: str = "text", encoding: str | None = None
) -> TextInputs:
    """`predict` inputs for a text model: literal strings, text files (a line each), or tables.

    An argument that names an existing file is read: a table (by extension) contributes its
    `text_column`, any other file one example per non-blank line (decoded as UTF-8 with
    replacement, counted, unless `encoding` names the file's encoding). Anything else is the
    text itself. Blank examples are counted in `empty` and kept (the model still answers, the
    output marks them). A binary file raises `InputError` naming it.
    """
    out = TextInputs()
    for raw in inputs:
        path = Path(raw)
        try:
            is_file = len(raw) < 4096 and "\n" not in raw and path.is_file()
        except OSError:  # a long sentence is not a file name
            is_file = False
        if is_file and path.suffix.lower() in TABLE_FORMATS:
            frame, report = read_table(path, as_text=True, encoding=encoding)
            require_columns(frame, [text_column], str(path))
            out.non_utf8 += report.replaced_rows
            for i, value in enumerate(frame[text_column]):
                out.texts.append(_cell(value))
                out.names.append(f"{path}:{report.row_name(i)}")
        elif is_file:
            text = read_text_file(path, encoding=encoding)
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                out.non_utf8 += "\ufffd" in line
                out.texts.append(line)
                out.names.append(f"{path}:line {number}")
        else:
            out.texts.append(raw)
            out.names.append(raw if len(raw) <= 60 else raw[:57] + "…")
    out.empty = sum(1 for t in out.texts if not t.strip())
    return out


def read_text_file(path: str | Path, *, encoding: str | None = None) -> str:
    """A plain text file's text: UTF-8 (bytes that are not become U+FFFD), or `encoding`.

    Raises `InputError` naming the file when it cannot be read or is binary (an image, an archive,
    NUL bytes), so that a photo passed to a text model is refused instead of read as text.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        text, _, _ = decode_text(raw, str(path), encoding)
    except InputError:
        raise
    except DataError as exc:
        raise InputError(
            f"{exc} A text model predicts on strings, plain text files (one example per line) and "
            "tables with a text column."
        ) from exc
    return text
