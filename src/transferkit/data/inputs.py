"""What `predict` feeds a model, read from the command line's arguments, per modality.

- images and audio: files as given, folders expanded to the files of that modality (sorted);
- text: literal strings, text files (one example per line) or tables (a text column);
- tables: table files of rows and `--row` JSON objects.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferkit.errors import ConfigError


@dataclass
class PredictionInputs:
    """The inputs, a display name for each, and sentences for the user about what was read."""

    items: list[Any]
    names: list[str]
    notes: list[str] = field(default_factory=list)


def expand_inputs(inputs: Sequence[str], extensions: Set[str]) -> list[str]:
    """Files as given; folders expanded to the files inside them with a known extension (sorted)."""
    items: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            items += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            items.append(raw)
    return items


#: what each kind of model takes, for the error that refuses the wrong kind of input
_TAKES = {"image": "image files or folders", "audio": "audio files or folders",
          "text": "sentences, text files or tables", "table": "table files of rows or --row JSON"}


def _refuse_other_modality(modality: str, inputs: Sequence[str]) -> None:
    """A file of another modality's type (a photo given to a text model) is an error, never read as this one."""
    from transferkit.data.audio_clips import AUDIO_EXTENSIONS
    from transferkit.data.images import IMAGE_EXTENSIONS

    for raw in inputs:
        if len(raw) > 1024 or "\n" in raw:
            continue  # a literal text, not a path
        suffix = Path(raw).suffix.lower()
        kind = "image" if suffix in IMAGE_EXTENSIONS else "audio" if suffix in AUDIO_EXTENSIONS else None
        if kind is not None and kind != modality:
            raise ConfigError(f"'{raw}' is an {kind} file, but this is a {modality} model: it takes "
                              f"{_TAKES.get(modality, modality + ' inputs')}")


def read_prediction_inputs(
    modality: str,
    inputs: Sequence[str],
    *,
    rows: Sequence[str] = (),
    text_column: str = "text",
    columns: Sequence[str] = (),
    path_columns: Sequence[str] = (),
    encoding: str | None = None,
) -> PredictionInputs:
    """The inputs of a `predict` call for a model of `modality` ('image', 'text', 'audio', 'table').

    `encoding` says how text files and tables are encoded when they are not UTF-8.
    """
    if not inputs and not rows:
        raise ConfigError("nothing to predict: give files, folders or (text models) sentences, or (table models) "
                          "a table of rows or --row '{\"column\": value, …}'")
    if rows and modality != "table":
        raise ConfigError(f"--row is for table models; this model takes {modality} inputs given as arguments")
    _refuse_other_modality(modality, inputs)
    if modality == "table":
        from transferkit.data.rows import read_rows

        items, names = read_rows(inputs, rows, columns=list(columns), path_columns=list(path_columns),
                                 encoding=encoding)
        return PredictionInputs(list(items), names)
    if modality == "text":
        from transferkit.data.text_tables import read_text_inputs

        got = read_text_inputs(inputs, text_column=text_column, encoding=encoding)
        notes = []
        if got.non_utf8:
            notes.append(f"{got.non_utf8} input text(s) had bytes that are not UTF-8 (replaced by '\ufffd')")
        if got.empty:
            notes.append(f"{got.empty} empty text(s): their predictions carry no information from the input")
        return PredictionInputs(list(got.texts), got.names, notes)
    if modality == "audio":
        from transferkit.data.audio_clips import AUDIO_EXTENSIONS

        clips = expand_inputs(inputs, AUDIO_EXTENSIONS)
        return PredictionInputs(list(clips), list(clips))
    from transferkit.data.images import IMAGE_EXTENSIONS

    images = expand_inputs(inputs, IMAGE_EXTENSIONS)
    return PredictionInputs(list(images), list(images))
