"""Text inputs for predict: strings, text files and tables — and never a binary file read as text."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest
from PIL import Image

from transferkit.data.text_tables import read_text_inputs
from transferkit.errors import DataError, InputError


def _jpeg(path: Path) -> Path:
    Image.new("RGB", (32, 32), (200, 30, 30)).save(path, format="JPEG")
    return path


def _wav(path: Path) -> Path:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x10\x00" * 800)
    path.write_bytes(buffer.getvalue())
    return path


def test_a_photo_is_never_read_as_lines_of_text(tmp_path: Path) -> None:
    """Issue 12 item 4: `predict TEXT_BUNDLE photo.jpg` read the JPEG's bytes as text and printed labels."""
    photo = _jpeg(tmp_path / "photo.jpg")
    with pytest.raises(InputError, match=r"photo\.jpg: is a JPEG image, not text.*text model predicts on strings"):
        read_text_inputs([str(photo)])


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("clip.wav", None, "a WAV audio file"),
        ("notes.txt", b"hello\x00world\n", "NUL bytes"),
        ("archive.txt", b"PK\x03\x04rest of a zip", "a ZIP archive"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
    ],
)
def test_binary_files_are_refused_naming_the_file(tmp_path: Path, name: str, content: bytes | None, kind: str) -> None:
    """Issue 12 item 4: a binary file (whatever its extension) is an InputError naming it."""
    path = tmp_path / name
    if content is None:
        _wav(path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=rf"{name.replace('.', '.')}: is .*{kind}"):
        read_text_inputs(["a sentence", str(path)])


def test_a_photo_renamed_as_a_table_is_refused(tmp_path: Path) -> None:
    """Issue 12 item 4: a binary file with a table's extension is not parsed into columns."""
    photo = _jpeg(tmp_path / "rows.csv")
    with pytest.raises(DataError, match=r"rows\.csv: is a JPEG image, not text"):
        read_text_inputs([str(photo)])


def test_text_files_are_still_read_line_by_line(tmp_path: Path) -> None:
    """Issue 12 item 4: what is text is still read: UTF-8, UTF-16 with a BOM, non-UTF-8 bytes counted."""
    utf8 = tmp_path / "a.txt"
    utf8.write_text("first line\n\nsecond line\n", encoding="utf-8")
    utf16 = tmp_path / "b.txt"
    utf16.write_bytes("a café\n".encode("utf-16"))
    latin = tmp_path / "c.txt"
    latin.write_bytes("naïve\n".encode("latin-1"))
    got = read_text_inputs([str(utf8), str(utf16), str(latin), "a literal sentence"])
    assert got.texts == ["first line", "second line", "a café", "na\ufffdve", "a literal sentence"]
    assert got.names[:2] == [f"{utf8}:line 1", f"{utf8}:line 3"]
    assert got.non_utf8 == 1
    assert read_text_inputs([str(latin)], encoding="latin-1").texts == ["naïve"]
