"""read_table / require_columns / load_manifest: every table format, and errors a user can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from transferkit.data.tables import TABLE_FORMATS, load_manifest, read_table, require_columns
from transferkit.errors import ConfigError, DataError

ROWS = [
    {"path": "a.jpg", "label": "cat"},
    {"path": "b.jpg", "label": "dog"},
    {"path": "c.jpg", "label": "01"},
]


def _write(path: Path, fmt: str, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt in ("jsonl", "ndjson"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    return path


def _images(folder: Path, *names: str) -> None:
    """Files of those names: real (tiny) images and audio clips for those types, one byte otherwise."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix in (".jpg", ".png"):
            from PIL import Image

            Image.new("RGB", (2, 2), (9, 9, 9)).save(path, format="JPEG" if suffix == ".jpg" else "PNG")
        elif suffix in (".wav", ".flac", ".ogg"):
            import numpy as np
            import soundfile as sf

            formats = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
            sf.write(path, np.full(800, 0.1, np.float32), 8000, format=formats[suffix])
        else:
            path.write_bytes(b"x")


# -- read_table ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "ndjson", "json"])
def test_every_format_round_trips(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path / f"t.{fmt}", fmt, ROWS)
    frame, report = read_table(path)
    assert list(frame.columns) == ["path", "label"]
    assert frame["path"].tolist() == ["a.jpg", "b.jpg", "c.jpg"]
    assert report.rows == 3 and report.replaced_rows == 0
    assert report.encoding_message() is None


def test_as_text_keeps_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("path,label\na.jpg,01\nb.jpg,NA\nc.jpg,\n")
    frame, _ = read_table(path, as_text=True)
    assert frame["label"].tolist()[:2] == ["01", "NA"]
    assert pd.isna(frame["label"].tolist()[2])
    numbers, _ = read_table(path)
    assert numbers["label"].tolist()[0] == 1  # without as_text pandas guesses types


def test_upper_case_extension_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "T.CSV"
    path.write_bytes("\ufeffpath,label\na.jpg,cat\n".encode())
    frame, _ = read_table(path)
    assert list(frame.columns) == ["path", "label"]


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    body = "path,label\na.jpg,café\nb.jpg,dog\nc.jpg,naïve\n"
    path.write_bytes(body.encode("cp1252"))
    frame, report = read_table(path)
    assert frame["label"].tolist() == ["caf\ufffd", "dog", "na\ufffdve"]
    assert report.replaced_rows == 2
    assert not report.header_replaced
    message = report.encoding_message()
    assert message is not None
    assert "excel.csv" in message and "2 of 3 rows" in message and "row 2, row 4" in message
    assert "UTF-8" in message


def test_invalid_utf8_in_jsonl_counts_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"path": "a.jpg", "label": "ok"}\n\n{"path": "b.jpg", "label": "caf\xe9"}\n')
    frame, report = read_table(path)
    assert len(frame) == 2 and report.replaced_rows == 1
    assert report.row_name(1) == "line 3"  # the blank line 2 is skipped but still counted
    assert "line 3" in (report.encoding_message() or "")


def test_unknown_extension_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=r"data\.xlsx.*'\.xlsx'.*\.csv, \.tsv, \.parquet, \.jsonl"):
        read_table(path)
    assert {".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".json"} == set(TABLE_FORMATS)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"dir\.csv: is a folder"):
        read_table(folder)
    bad = tmp_path / "bad.parquet"
    bad.write_text("this is not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read it as PARQUET"):
        read_table(bad)


@pytest.mark.parametrize("content", ["", "path,label\n"])
def test_empty_csv(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"empty\.csv: the (file is empty|table has no rows)"):
        read_table(path)


@pytest.mark.parametrize("fmt, content", [("jsonl", ""), ("jsonl", "\n\n"), ("json", "[]"), ("json", "")])
def test_empty_json(tmp_path: Path, fmt: str, content: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"empty\.{fmt}: the (file is empty|table has no rows)"):
        read_table(path)


def test_bad_json_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"path": "a.jpg"}\n{"path": oops}\n')
    with pytest.raises(DataError, match=r"t\.jsonl: line 2 is not valid JSON"):
        read_table(path)
    path.write_text('{"path": "a.jpg"}\n["a.jpg", "cat"]\n')
    with pytest.raises(DataError, match=r"line 2 holds a list"):
        read_table(path)


def test_json_must_be_records(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"path": ["a.jpg"], "label": ["cat"]}')
    with pytest.raises(DataError, match=r"t\.json: expected a JSON list of records"):
        read_table(path)


# -- require_columns -------------------------------------------------------------------------------


def test_require_columns_lists_what_exists() -> None:
    frame = pd.DataFrame({"filename": ["a"], "Label": ["x"]})
    expected = r"data\.csv: missing columns 'path', 'label'.*'filename', 'Label'"
    with pytest.raises(DataError, match=expected) as info:
        require_columns(frame, ["path", "label"], "data.csv")
    assert "Did you mean 'Label' for 'label'?" in str(info.value)
    require_columns(frame, ["Label"], "data.csv")  # present: no error


def test_require_columns_spots_semicolon_files(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("path;label\na.jpg;cat\n")
    frame, _ = read_table(path)
    with pytest.raises(DataError, match="delimited by ';'"):
        require_columns(frame, ["path", "label"], str(path))


# -- load_manifest ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "json"])
def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path, fmt: str, monkeypatch) -> None:
    data_dir = tmp_path / "data"
    _images(data_dir, "a.jpg", "b.jpg", "c.jpg")
    manifest = _write(data_dir / f"m.{fmt}", fmt, ROWS)
    monkeypatch.chdir(tmp_path)  # a different working directory must not matter
    data = load_manifest(Path("data") / manifest.name)
    assert data.items == [str(data_dir / n) for n in ("a.jpg", "b.jpg", "c.jpg")]
    assert data.labels == ["cat", "dog", "01"]  # "01" stays text
    assert data.splits is None
    assert data.modality == "image"


def test_manifest_subfolders_absolute_paths_and_label_spaces(tmp_path: Path) -> None:
    _images(tmp_path, "imgs/a.jpg", "elsewhere/b.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"file,class\nimgs/a.jpg, cat \n{tmp_path / 'elsewhere/b.jpg'},dog\n")
    data = load_manifest(manifest, path_column="file", label_column="class")
    assert data.items == [str(tmp_path / "imgs/a.jpg"), str(tmp_path / "elsewhere/b.jpg")]
    assert data.labels == ["cat", "dog"]
    assert all(os.path.isabs(item) for item in data.items)


def test_manifest_missing_files_are_listed_with_spreadsheet_rows(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg")
    manifest = tmp_path / "m.csv"
    lines = ["path,label", "a.jpg,cat"] + [f"gone{i}.jpg,dog" for i in range(7)]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_manifest(manifest)
    message = str(info.value)
    assert str(manifest) in message
    assert "7 of 8 rows point to files that do not exist" in message
    assert "row 3 'gone0.jpg', row 4 'gone1.jpg'" in message
    assert "gone6.jpg" not in message  # only the first few
    assert "header is row 1" in message
    assert str(tmp_path) in message


def test_manifest_windows_paths_get_a_hint(tmp_path: Path) -> None:
    _images(tmp_path, "imgs/a.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nimgs\\a.jpg,cat\n")
    with pytest.raises(DataError, match="Windows separators"):
        load_manifest(manifest)


def test_manifest_empty_labels_are_named(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.jpg,cat\nb.jpg,\nc.jpg,  \n")
    with pytest.raises(DataError, match=r"m\.csv: 2 of 3 rows have no label in column 'label': row 3, row 4"):
        load_manifest(manifest)


def test_manifest_empty_paths_are_named(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.jpg", "label": "x"}\n{"path": null, "label": "y"}\n')
    with pytest.raises(DataError, match=r"1 of 2 rows have no path in column 'path': line 2"):
        load_manifest(manifest)


def test_manifest_missing_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,y\na.jpg,cat\n")
    expected = r"m\.csv: missing columns 'path', 'label'; the table has columns: 'image', 'y'"
    with pytest.raises(DataError, match=expected):
        load_manifest(manifest)


def test_manifest_split_column(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\na.jpg,cat,train\nb.jpg,dog, Validation\nc.jpg,cat,TEST\n")
    assert load_manifest(manifest).splits == ["train", "val", "test"]
    assert load_manifest(manifest, split_column=None).splits is None
    assert load_manifest(manifest, split_column="fold").splits is None  # column absent: no splits


def test_manifest_unknown_split_values(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg", "b.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\na.jpg,cat,train\nb.jpg,dog,holdout\n")
    expected = r"1 of 2 rows have an unknown split in column 'split': row 3 'holdout'"
    with pytest.raises(DataError, match=expected):
        load_manifest(manifest)


def test_manifest_with_invalid_utf8_paths_warns(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg", "b.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label,note\na.jpg,cafe,naïve\nb.jpg,dog,\n".encode("cp1252"))
    with pytest.warns(UserWarning, match=r"m\.csv.*1 of 2 rows \(row 2.*encoding='cp1252'"):
        data = load_manifest(manifest)
    assert data.labels == ["cafe", "dog"]


def test_labels_that_are_not_utf8_are_an_error_naming_the_rows(tmp_path: Path) -> None:
    """Issue 12 item 7: a Latin-1 manifest with labels 'café' and 'cafè' trained one class 'caf�'."""
    _images(tmp_path, "a.jpg", "b.jpg", "c.jpg", "d.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label\na.jpg,café\nb.jpg,cafè\nc.jpg,café\nd.jpg,cafè\n".encode("latin-1"))
    expected = r"m\.csv: 4 of 4 labels in column 'label' are not valid UTF-8: row 2 'caf\ufffd'.*encoding="
    with pytest.raises(DataError, match=expected):
        load_manifest(manifest)
    data = load_manifest(manifest, encoding="latin-1")
    assert data.labels == ["café", "cafè", "café", "cafè"] and len(data.classes) == 2


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json"])
def test_encoding_is_threaded_through_every_text_table_loader(tmp_path: Path, fmt: str) -> None:
    """Issue 12 item 7: load_dataset, load_manifest, load_text_table and load_table_rows take `encoding=`."""
    from transferkit.data import load_dataset
    from transferkit.data.rows import load_table_rows
    from transferkit.data.text_tables import load_text_table

    rows = [{"path": "a.jpg", "label": "café"}, {"path": "b.jpg", "label": "cafè"}]
    _images(tmp_path, "a.jpg", "b.jpg")
    path = tmp_path / f"m.{fmt}"
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        text = f"path{sep}label\n" + "".join(f"{r['path']}{sep}{r['label']}\n" for r in rows)
    elif fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False)
    path.write_bytes(text.encode("cp1252"))
    loaders = {
        "load_dataset": lambda **kw: load_dataset(path, **kw).labels,
        "load_manifest": lambda **kw: load_manifest(path, **kw).labels,
        "load_text_table": lambda **kw: load_text_table(path, text_column="path", **kw).labels,
        "load_table_rows": lambda **kw: load_table_rows(path, columns=["path"], path_columns=[], **kw)[0].labels,
    }
    for name, load in loaders.items():
        with pytest.raises(DataError, match=r"not valid UTF-8.*(row|line|record) [12]"):
            load()
        assert load(encoding="cp1252") == ["café", "cafè"], name


def test_a_wrong_or_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    """Issue 12 item 7: an encoding the file does not decode in, or no such encoding."""
    path = tmp_path / "m.csv"
    path.write_bytes("path,label\na.jpg,café\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"m\.csv: is not valid ascii.*line 2"):
        read_table(path, encoding="ascii")
    with pytest.raises(ConfigError, match="not a text encoding Python knows"):
        read_table(path, encoding="klingon")


def test_utf16_with_a_byte_order_mark_is_read_as_such(tmp_path: Path) -> None:
    """Issue 12 item 7: Excel's "Unicode text" (UTF-16 with a BOM) is text, read without being told."""
    path = tmp_path / "m.tsv"
    path.write_bytes("path\tlabel\na.jpg\tcafé\n".encode("utf-16"))
    frame, report = read_table(path, as_text=True)
    assert frame["label"].tolist() == ["café"] and report.encoding == "utf-16"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_a_binary_file_is_never_read_as_a_table(tmp_path: Path, fmt: str) -> None:
    """Issue 12 item 4: an image renamed .csv is not parsed into garbage columns."""
    from PIL import Image

    path = tmp_path / f"photo.{fmt}"
    Image.new("RGB", (4, 4)).save(path, format="JPEG")
    with pytest.raises(DataError, match=r"photo\.\w+: .*a JPEG image"):
        read_table(path)


def test_text_manifest_keeps_the_text(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text('text,label\n"great, really",pos\nawful,neg\n')
    data = load_manifest(manifest, path_column="text", modality="text")
    assert data.items == ["great, really", "awful"]
    assert data.modality == "text"


def test_unknown_modality(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="modality"):
        load_manifest(tmp_path / "m.csv", modality="video")


# -- load_dataset: one entry point for folders and tables ------------------------------------------


def test_load_dataset_dispatches_folders_and_tables(tmp_path: Path) -> None:
    from transferkit.data import load_dataset

    _images(tmp_path / "pics", "cat/a.jpg", "dog/b.png", "dog/notes.txt")
    folder = load_dataset(tmp_path / "pics")
    assert folder.labels == ["cat", "dog"]
    assert list(folder.skipped) == [str(tmp_path / "pics/dog/notes.txt")]

    manifest = tmp_path / "pics" / "m.csv"
    manifest.write_text("file,y,split\ncat/a.jpg,cat,train\ndog/b.png,dog,val\n")
    table = load_dataset(str(manifest), path_column="file", label_column="y")
    assert table.items == folder.items
    assert table.splits == ["train", "val"]


def test_load_dataset_errors(tmp_path: Path) -> None:
    from transferkit.data import load_dataset

    with pytest.raises(DataError, match=r"missing: not found"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"photo\.jpg: unknown table type"):
        load_dataset(tmp_path / "photo.jpg")
    with pytest.raises(DataError, match="text data is read from a table"):
        load_dataset(tmp_path, modality="text")
    with pytest.raises(ConfigError, match="modality"):
        load_dataset(tmp_path, modality="video")


def test_load_dataset_audio_folders(tmp_path: Path) -> None:
    pytest.importorskip("transferkit.data.audio_clips")
    from transferkit.data import load_dataset

    _images(tmp_path, "yes/a.wav", "no/b.FLAC", "no/c.ogg", "no/d.mp3")
    data = load_dataset(tmp_path, modality="audio")
    assert data.labels == ["no", "no", "yes"] and data.modality == "audio"
    assert list(data.skipped) == [str(tmp_path / "no/d.mp3")]


def test_importing_the_data_package_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, transferkit.data; "
        "print(sorted(m for m in ('pandas', 'PIL', 'torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pandas" not in out.stdout and "PIL" not in out.stdout
