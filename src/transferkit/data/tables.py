"""Labelled data described by a table: CSV, TSV, Parquet, JSON Lines or JSON records.

`read_table` reads any of these into a `pandas.DataFrame` and reports what it had to repair:
text that is not valid UTF-8 (a CSV saved by Excel in Windows-1252, say) is decoded with
replacement characters rather than refused, and the number of rows affected is counted, so the
caller can tell the user instead of training on mangled labels unawares. `encoding=` says how a
file is encoded when it is not UTF-8 (a UTF-16 or UTF-32 file with a byte-order mark is read as
such without being told). A binary file (an image, an archive, anything holding NUL bytes) is
never read as text: it is a `DataError` naming the file and what it looks like.

Labels are never guessed at: a label cell holding bytes that are not UTF-8 is an error naming
the file and rows (`check_labels`), because replacing them merges distinct labels ('café' and
'cafè' would both become 'caf�'). Pass `encoding=` to read such a file as what it is.

`load_manifest` turns such a table into `LabelledData`: one row per input, a column of file
paths (read relative to the table's own folder, so a dataset folder can be moved as a whole),
a column of labels and, optionally, a column naming each row's split. Every problem is reported
with row numbers a user can find in the file: spreadsheet rows for CSV/TSV (the header is row 1),
line numbers for JSON Lines, 1-based record numbers for JSON and Parquet.

pandas is imported inside the functions, so that `import transferkit` stays fast.
"""

from __future__ import annotations

import codecs
import difflib
import io
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transferkit.data.dataset import LabelledData, canonical_split
from transferkit.errors import ConfigError, DataError
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    import pandas as pd

#: table file extensions (lower case) → format name
TABLE_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}

#: the group column read when a table has it (and no other was named)
DEFAULT_GROUP_COLUMN = "group"
#: modalities whose manifest column holds file paths (text manifests hold the text itself)
FILE_MODALITIES = ("image", "audio")

_REPLACEMENT = "\ufffd"
_SHOWN = 5  # how many offending rows an error message lists


@dataclass(frozen=True)
class TableReport:
    """What `read_table` noticed while reading one table.

    `replaced_rows` counts data rows that held bytes which are not valid UTF-8; those bytes were
    decoded as U+FFFD ('�'). `header_replaced` says the same of the header row.
    """

    source: str
    format: str
    rows: int
    replaced_rows: int = 0
    header_replaced: bool = False
    #: 0-based indices of the first few rows with replaced bytes
    replaced_examples: tuple[int, ...] = ()
    #: JSON Lines only: the file line of each row (blank lines are skipped, so they can differ)
    line_numbers: tuple[int, ...] | None = None
    #: how the file was decoded ("utf-8" unless told otherwise, or a byte-order mark said so)
    encoding: str = "utf-8"
    #: when bytes were replaced: an encoding the whole file decodes in (a guess to offer the user)
    suggested_encoding: str | None = None

    def row_name(self, index: int) -> str:
        """How a user finds DataFrame row `index` in the file: 'row 7', 'line 6', 'record 6'."""
        if self.format in ("csv", "tsv"):
            return f"row {index + 2}"
        if self.format == "jsonl":
            return f"line {self.line_numbers[index] if self.line_numbers else index + 1}"
        return f"record {index + 1}"

    @property
    def numbering(self) -> str:
        """One sentence saying how `row_name` counts."""
        if self.format in ("csv", "tsv"):
            return "rows are numbered as in a spreadsheet: the header is row 1, the first data row is row 2"
        if self.format == "jsonl":
            return "lines are numbered from 1, as in a text editor"
        return "records are numbered from 1"

    def encoding_message(self) -> str | None:
        """A sentence for the user when bytes were replaced, else None."""
        if not self.replaced_rows and not self.header_replaced:
            return None
        where = []
        if self.header_replaced:
            where.append("the header")
        if self.replaced_rows:
            shown = ", ".join(self.row_name(i) for i in self.replaced_examples)
            more = ", …" if self.replaced_rows > len(self.replaced_examples) else ""
            where.append(f"{self.replaced_rows} of {self.rows} rows ({shown}{more}; {self.numbering})")
        return (
            f"{self.source}: text that is not valid UTF-8 in {' and '.join(where)}; the bad bytes "
            f"were replaced by '\ufffd'. {self.encoding_hint()}"
        )

    def encoding_hint(self) -> str:
        """What to do about bytes that are not UTF-8: say the encoding, or save the file as UTF-8."""
        guess = f" (it reads as {self.suggested_encoding})" if self.suggested_encoding else ""
        return (
            f"Pass the file's encoding{guess}, e.g. encoding={self.suggested_encoding or 'cp1252'!r} "
            f"(--encoding {self.suggested_encoding or 'cp1252'}), or save the file as UTF-8."
        )


#: signatures of binary files a user may pass where a text table or text file is expected
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg audio/video file"),
    (b"ID3", "an MP3 audio file"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx/.docx document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PAR1", "a Parquet table"),
    (b"\x7fELF", "a program"),
    (b"SQLite format 3\x00", "an SQLite database"),
)

#: byte-order marks that say unambiguously how a text file is encoded (longest first)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def binary_kind(raw: bytes) -> str | None:
    """What `raw` looks like when it is not text ("a JPEG image", "binary data …"), else None.

    Text with a UTF-16/32 byte-order mark is text. Otherwise a known binary signature, or a NUL
    byte in the first 8 KiB (no text encoding but UTF-16/32 has those), marks a binary file.
    """
    if any(raw.startswith(bom) for bom, _ in _BOMS):
        return None
    if raw.startswith(b"RIFF") and raw[8:12] in (b"WAVE", b"WEBP", b"AVI "):
        return {b"WAVE": "a WAV audio file", b"WEBP": "a WebP image", b"AVI ": "an AVI video"}[raw[8:12]]
    for magic, kind in _BINARY_SIGNATURES:
        if raw.startswith(magic):
            return kind
    if b"\x00" in raw[:8192]:
        return "binary data (it holds NUL bytes, which text does not)"
    return None


def check_encoding(encoding: str | None) -> str | None:
    """`encoding` itself when Python knows it (None stays None), else a `ConfigError`."""
    if encoding is None:
        return None
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError) as exc:
        raise ConfigError(
            f"encoding {encoding!r} is not a text encoding Python knows; use a name such as utf-8, "
            "cp1252 (Windows, Excel), latin-1, utf-16 or shift_jis"
        ) from exc
    return encoding


def decode_text(raw: bytes, source: str, encoding: str | None = None) -> tuple[str, bool, str]:
    """Bytes of a text file → (text, whether bytes were replaced, the encoding used).

    Without `encoding`: a byte-order mark decides (UTF-8/16/32), else UTF-8 with U+FFFD for bytes
    that are not UTF-8. With one, the file must decode in it, or it is a `DataError` saying where.
    A binary file is refused (`binary_kind`).
    """
    kind = binary_kind(raw)
    if kind is not None:
        raise DataError(
            f"{source}: is {kind}, not text; transferkit reads text only from text files "
            "(UTF-8, or the encoding you name)"
        )
    if encoding is None:
        encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
        if encoding is None:
            text, replaced = _decode(raw)
            return text, replaced, "utf-8"
    check_encoding(encoding)
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is not part of the text
    try:
        return raw.decode(encoding), False, encoding
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{source}: is not valid {encoding}: byte {raw[exc.start:exc.start + 1]!r} at line {line} "
            f"({exc.reason}); pass the encoding the file was saved in, or save it as UTF-8"
        ) from exc


def _suggest_encoding(raw: bytes) -> str | None:
    """An encoding the whole file decodes in, when UTF-8 failed: cp1252 (Excel on Windows), else latin-1."""
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def read_table(
    path: str | Path, *, as_text: bool = False, encoding: str | None = None
) -> tuple[pd.DataFrame, TableReport]:
    """Read a CSV, TSV, Parquet, JSON Lines (.jsonl/.ndjson) or JSON-records file.

    With `as_text`, every cell is read as the text written in the file (no guessing of numbers,
    dates or "NA"; "01" stays "01"); empty cells are missing (NaN). `encoding` says how a text
    file is encoded (see the module docstring). Raises `DataError` for a file that cannot be read,
    a binary file, an unknown extension, or a table without rows.
    """
    check_encoding(encoding)
    source = Path(path)
    fmt = TABLE_FORMATS.get(source.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown table type '{source.suffix}'; expected one of "
            f"{', '.join(TABLE_FORMATS)} (or a folder of class sub-folders)"
        )
    try:
        raw = source.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found; check the path") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not a table file") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc

    line_numbers: tuple[int, ...] | None = None
    replaced = False
    used = encoding or "utf-8"
    try:
        if fmt == "parquet":
            if not raw.startswith(b"PAR1"):
                kind = binary_kind(raw)
                raise DataError(
                    f"{path}: cannot read it as PARQUET (it does not start with Parquet's signature"
                    + (f"; it is {kind}" if kind else "")
                    + "); check the file, or give it the extension of its format (.csv, .jsonl, …)"
                )
            frame, replaced = _read_parquet(raw, as_text, encoding)
        else:
            text, replaced, used = decode_text(raw, str(path), encoding)
            if fmt == "jsonl":
                frame, lines = _read_jsonl(text, str(path), as_text)
                line_numbers = lines if lines != tuple(range(1, len(lines) + 1)) else None
            elif fmt == "json":
                frame = _read_json_records(text, str(path), as_text)
            else:
                frame = _read_delimited(text, "\t" if fmt == "tsv" else ",", as_text)
    except DataError:
        raise
    except (ValueError, OSError) as exc:  # pandas, pyarrow and json parse errors are ValueErrors
        if type(exc).__name__ == "EmptyDataError":
            raise DataError(f"{path}: the file is empty; expected a header row and data rows") from exc
        raise DataError(f"{path}: cannot read it as {fmt.upper()} ({exc})") from exc

    if len(frame) == 0:
        raise DataError(
            f"{path}: the table has no rows (columns: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    rows_hit: list[int] = _rows_with_replacements(frame) if replaced else []
    report = TableReport(
        source=str(path),
        format=fmt,
        rows=len(frame),
        replaced_rows=len(rows_hit),
        header_replaced=replaced and any(_REPLACEMENT in str(c) for c in frame.columns),
        replaced_examples=tuple(rows_hit[:_SHOWN]),
        line_numbers=line_numbers,
        encoding=used,
        suggested_encoding=_suggest_encoding(raw) if replaced and fmt != "parquet" else None,
    )
    return frame, report


def check_labels(labels: Sequence[str], report: TableReport, column: str) -> None:
    """Refuse labels whose bytes were not valid UTF-8 (replaced by U+FFFD): they would merge classes.

    Raises `DataError` naming the file, the column and the first rows, and how to say the encoding.
    """
    if not report.replaced_rows:
        return
    bad = [i for i, label in enumerate(labels) if _REPLACEMENT in label]
    if not bad:
        return
    shown = ", ".join(f"{report.row_name(i)} {labels[i]!r}" for i in bad[:_SHOWN])
    more = ", …" if len(bad) > _SHOWN else ""
    raise DataError(
        f"{report.source}: {len(bad)} of {report.rows} labels in column '{column}' are not valid UTF-8: "
        f"{shown}{more} ({report.numbering}). Read with replacement characters, different labels "
        f"(such as 'café' and 'cafè') would become one class. {report.encoding_hint()}"
    )


def require_columns(df: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    """Raise `DataError` naming the missing columns and listing the ones the table does have."""
    present = [str(c) for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if not missing:
        return
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, present, n=1, cutoff=0.6)
        close = close or [c for c in present if c.strip().lower() == name.strip().lower()]
        if close:
            hints.append(f"'{close[0]}' for '{name}'")
    message = (
        f"{source}: missing column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(repr(c) for c in missing)}; the table has columns: {', '.join(map(repr, present))}."
    )
    if hints:
        message += f" Did you mean {', '.join(hints)}?"
    if len(present) == 1 and any(sep in present[0] for sep in (";", "\t", "|")):
        message += " The header looks like one column holding separators: is the file delimited by ';'?"
    raise DataError(message + " Name the right columns, or rename them in the file.")


def read_groups(frame: pd.DataFrame, group_column: str | None, report: TableReport, source: str,
                keep: Sequence[int] | None = None) -> list[str] | None:
    """Each row's group from `group_column` (None when not asked for); an empty cell is an error naming its row.

    The default name, "group", is read when the table has that column; any other name must exist.
    """
    if group_column is None or (group_column == DEFAULT_GROUP_COLUMN and group_column not in frame.columns):
        return None
    require_columns(frame, [group_column], source)
    groups = [_cell(value).strip() for value in frame[group_column]]
    rows = list(range(len(groups))) if keep is None else list(keep)
    _fail_on_rows([i for i in rows if not groups[i]], report, source, f"have no group in column '{group_column}'",
                  "Fill them in, or leave out --group-column to split by example.")
    return [groups[i] for i in rows]


def load_manifest(
    path: str | Path,
    path_column: str = "path",
    label_column: str = "label",
    modality: str = "image",
    split_column: str | None = "split",
    *,
    encoding: str | None = None,
    group_column: str | None = None,
) -> LabelledData:
    """Read a table of inputs and labels (and, when the table has `split_column`, their splits).

    For image and audio data, `path_column` holds file paths, relative to the table's folder
    unless absolute; items are absolute paths as `str`. For text, it holds the text itself.
    Labels are read as text with surrounding spaces removed ("01" stays "01"). Raises `DataError`
    listing the offending rows for missing files, empty paths, empty labels, unknown splits and
    labels that are not valid UTF-8 (unless `encoding` says how the file is encoded).
    """
    if modality not in (*FILE_MODALITIES, "text"):
        raise ConfigError(f"modality must be one of image, audio, text; got {modality!r}")
    frame, report = read_table(path, as_text=True, encoding=encoding)
    source = str(path)
    use_split = split_column is not None and split_column in frame.columns
    require_columns(frame, [path_column, label_column], source)
    labels = [_cell(value).strip() for value in frame[label_column]]
    check_labels(labels, report, label_column)
    message = report.encoding_message()
    if message:
        warnings.warn(message, stacklevel=2)
    _fail_on_rows(
        [i for i, label in enumerate(labels) if not label], report, source,
        f"have no label in column '{label_column}'", "Fill them in or remove those rows.",
    )
    values = [_cell(value) for value in frame[path_column]]
    what = "text" if modality == "text" else "path"
    _fail_on_rows(
        [i for i, value in enumerate(values) if not value.strip()], report, source,
        f"have no {what} in column '{path_column}'", "Fill them in or remove those rows.",
    )

    items = values if modality == "text" else _resolve_paths(values, Path(path), report)
    splits = None
    if use_split:
        assert split_column is not None
        splits = _read_splits([_cell(v) for v in frame[split_column]], split_column, report, source)
    groups = read_groups(frame, group_column, report, source)
    return LabelledData(items=items, labels=labels, source=source, modality=modality, splits=splits, groups=groups)


# -- reading ---------------------------------------------------------------------------------------


def _decode(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text (a byte-order mark is dropped); bytes that are not UTF-8 become U+FFFD."""
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8-sig", errors="replace"), True


def _read_delimited(text: str, sep: str, as_text: bool) -> pd.DataFrame:
    import pandas as pd

    if as_text:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    return pd.read_csv(io.StringIO(text), sep=sep)


def _read_parquet(raw: bytes, as_text: bool, encoding: str | None) -> tuple[pd.DataFrame, bool]:
    """A Parquet table; with `as_text`, binary cells are decoded (UTF-8, or `encoding`), and
    whether bytes had to be replaced."""
    import pandas as pd

    frame = pd.read_parquet(io.BytesIO(raw))
    if not as_text:
        return frame, False
    replaced = False

    def text(value: object) -> object:
        nonlocal replaced
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            try:
                return data.decode(encoding or "utf-8")
            except UnicodeDecodeError:
                replaced = True
                return data.decode(encoding or "utf-8", errors="replace")
        return value

    frame = frame.apply(lambda col: col.map(text)) if len(frame) else frame
    return _as_text(frame), replaced


def _read_jsonl(text: str, source: str, as_text: bool) -> tuple[pd.DataFrame, tuple[int, ...]]:
    import pandas as pd

    records: list[JSONObject] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: line {number} is not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(
                f"{source}: line {number} holds a {type(record).__name__}; each line must be one "
                'JSON object such as {"path": "a.jpg", "label": "cat"}'
            )
        records.append(record)
        lines.append(number)
    frame = pd.DataFrame.from_records(records)
    return (_as_text(frame) if as_text else frame), tuple(lines)


def _read_json_records(text: str, source: str, as_text: bool) -> pd.DataFrame:
    import pandas as pd

    if not text.strip():
        raise DataError(f"{source}: the file is empty; expected a JSON list of records")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        got = type(data).__name__ if not isinstance(data, list) else "a list holding non-objects"
        raise DataError(
            f"{source}: expected a JSON list of records, "
            f'[{{"path": "a.jpg", "label": "cat"}}, …], got {got}. For one object per line, use .jsonl'
        )
    frame = pd.DataFrame.from_records(data)
    return _as_text(frame) if as_text else frame


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every non-missing cell as `str` (JSON and Parquet already carry types; labels need text)."""
    if len(frame) == 0:
        return frame
    return frame.apply(lambda col: col.map(lambda v: None if _missing(v) else str(v)).astype(object))


def _missing(value: object) -> bool:
    """None, NaN, NaT or pd.NA (but not a list or array cell, which pd.isna would expand)."""
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _rows_with_replacements(frame: pd.DataFrame) -> list[int]:
    hit = [False] * len(frame)
    for column in frame.columns:
        for i, value in enumerate(frame[column]):
            if isinstance(value, str) and _REPLACEMENT in value:
                hit[i] = True
    return [i for i, flag in enumerate(hit) if flag]


# -- manifest checks -------------------------------------------------------------------------------


def _cell(value: object) -> str:
    """A cell as text; missing cells (NaN, None, pd.NA) as ''."""
    return "" if _missing(value) else str(value)


def _fail_on_rows(rows: Sequence[int], report: TableReport, source: str, problem: str, fix: str) -> None:
    if not rows:
        return
    shown = ", ".join(report.row_name(i) for i in rows[:_SHOWN])
    more = ", …" if len(rows) > _SHOWN else ""
    raise DataError(
        f"{source}: {len(rows)} of {report.rows} rows {problem}: {shown}{more} ({report.numbering}). {fix}"
    )


def _resolve_paths(values: list[str], manifest: Path, report: TableReport) -> list[str]:
    """Absolute paths, relative ones taken from the manifest's folder; all must be files."""
    base = os.path.abspath(manifest.parent)
    items = [os.path.normpath(os.path.join(base, os.path.expanduser(v))) for v in values]
    missing = [i for i, item in enumerate(items) if not os.path.isfile(item)]
    if missing:
        shown = ", ".join(f"{report.row_name(i)} '{values[i]}'" for i in missing[:_SHOWN])
        more = ", …" if len(missing) > _SHOWN else ""
        hint = ""
        if any("\\" in values[i] for i in missing):
            hint = " Some paths use '\\' (Windows separators); write them with '/'."
        raise DataError(
            f"{manifest}: {len(missing)} of {report.rows} rows point to files that do not exist: "
            f"{shown}{more} ({report.numbering}). Relative paths are read from the manifest's folder, "
            f"{base}.{hint} Fix the paths or remove those rows."
        )
    return items


def _read_splits(values: list[str], column: str, report: TableReport, source: str) -> list[str]:
    splits = [canonical_split(v) for v in values]
    bad = [i for i, split in enumerate(splits) if split is None]
    if bad:
        shown = ", ".join(f"{report.row_name(i)} {values[i]!r}" for i in bad[:_SHOWN])
        more = ", …" if len(bad) > _SHOWN else ""
        raise DataError(
            f"{source}: {len(bad)} of {report.rows} rows have an unknown split in column '{column}': "
            f"{shown}{more} ({report.numbering}). Use train, val (or valid, validation) or test."
        )
    return [split for split in splits if split is not None]
