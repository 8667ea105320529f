"""Rows of a multimodal table (`data.rows`): each a dict of column → cell, paths made absolute against the table's
own folder, blank cells missing; a missing column, an unlabelled row or a bad `--row` is an error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferkit.data.rows import load_table_rows, read_rows
from transferkit.errors import DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_labelled_table_becomes_rows_with_absolute_paths(tmp_path: Path) -> None:
    table = write(tmp_path / "shop" / "items.csv",
                  "photo,title,price,label,split\nimg/a.jpg,red kettle,3.5,kettle,train\n,  ,,mug,test\n")
    data, _ = load_table_rows(table, columns=["photo", "title", "price"], path_columns=["photo"])
    assert data.labels == ["kettle", "mug"] and data.splits == ["train", "test"] and data.modality == "table"
    assert data.items[0] == {"photo": str(tmp_path / "shop" / "img" / "a.jpg"), "title": "red kettle", "price": "3.5"}
    assert data.items[1] == {"photo": None, "title": None, "price": None}  # blank cells are missing, not ""


def test_what_cannot_be_used_is_named(tmp_path: Path) -> None:
    unlabelled = write(tmp_path / "u.csv", "title,label\na,x\nb,\n")
    with pytest.raises(DataError, match=r"u\.csv: 1 of 2 rows have no label in column 'label'"):
        load_table_rows(unlabelled, columns=["title"], path_columns=[])
    with pytest.raises(DataError, match="titel"):  # the table's columns are listed
        load_table_rows(write(tmp_path / "t.csv", "titel,label\na,x\n"), columns=["title"], path_columns=[])
    with pytest.raises(DataError, match="unknown split 'later'"):
        load_table_rows(write(tmp_path / "s.csv", "title,label,split\na,x,later\n"), columns=["title"],
                        path_columns=[])


def test_predict_rows_from_tables_and_json(tmp_path: Path) -> None:
    table = write(tmp_path / "new" / "rows.csv", "photo,title\nb.jpg,blue mug\n")
    rows, names = read_rows([str(table)], ['{"title": "a pot", "photo": "c.jpg"}'], columns=["photo", "title"],
                            path_columns=["photo"])
    assert rows[0] == {"photo": str(tmp_path / "new" / "b.jpg"), "title": "blue mug"}
    assert rows[1]["title"] == "a pot" and Path(rows[1]["photo"]).is_absolute()
    assert names[1] == "--row 1" and names[0].startswith(str(table))
    with pytest.raises(DataError, match="--row 1 is not valid JSON"):
        read_rows([], ["{nope"], columns=["title"], path_columns=[])
    with pytest.raises(DataError, match="--row 1 has columns the model was not trained on: colour"):
        read_rows([], ['{"colour": "red"}'], columns=["title"], path_columns=[])
    with pytest.raises(DataError, match="not a file"):
        read_rows([str(tmp_path / "missing.csv")], [], columns=["title"], path_columns=[])
