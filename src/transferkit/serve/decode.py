"""Request bodies → model inputs, decoded from bytes in memory.

Nothing here opens a file: uploads are decoded from the bytes received, text and rows come from
JSON. A table row's image or audio column would be a file path on the server's disk, so the
server refuses such a cell instead of opening it (an absent cell is fine: the model masks it).
Every problem raises `RequestError` with the HTTP status and a message saying what was received,
what was expected, and what to do.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from transferkit.jsontypes import JSONObject
from transferkit.serve.limits import ServeOptions

if TYPE_CHECKING:
    from PIL import Image


class RequestError(Exception):
    """A request the server cannot use; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, name: str, max_pixels: int, min_size: int | None = None) -> Image.Image:
    """Upload bytes → a PIL image (pixels not decoded yet), refusing an oversized header first.

    `min_size`: as for files (`transferkit.data.images.open_image`), a JPEG may be decoded at a
    reduced scale when both sides stay at least this long, so that an upload decodes to the same
    pixels as the same file given to `transferkit predict`.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(422, f"{name}: empty upload (0 bytes); send the image file's bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError(413, f"{name}: image refused before decoding, its header declares too many pixels "
                                f"({exc}); the limit is {max_pixels:,} pixels (--max-pixels)") from exc
    except UnidentifiedImageError as exc:
        raise RequestError(422, f"{name}: not an image PIL can read ({len(data)} bytes of an unknown or corrupt "
                                "format); send PNG, JPEG, WebP, BMP, GIF or TIFF bytes") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise RequestError(422, f"{name}: cannot open the image ({type(exc).__name__}: {exc})") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise RequestError(413, f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
                                f"{max_pixels:,} (--max-pixels); downscale it before sending")
    if min_size is not None and img.format == "JPEG":
        img.draft(None, (min_size, min_size))
    return img


def decode_audio(data: bytes, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """Upload bytes → (samples [n, channels] float32, sample rate), length checked from the header."""
    import soundfile

    if not data:
        raise RequestError(422, f"{name}: empty upload (0 bytes); send the audio file's bytes")
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception as exc:  # libsndfile reports unknown and corrupt formats as RuntimeErrors
        raise RequestError(422, f"{name}: not audio soundfile can decode ({len(data)} bytes); send WAV, FLAC or "
                                f"OGG bytes ({type(exc).__name__}: {exc})") from exc
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > max_seconds:
        raise RequestError(413, f"{name}: clip lasts {seconds:.1f} s, over the limit of {max_seconds:g} s "
                                "(--max-audio-s); send a shorter clip")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise RequestError(422, f"{name}: audio cannot be decoded ({type(exc).__name__}: {exc}); the upload may "
                                "be truncated") from exc
    return samples, int(rate)


def parse_json(body: bytes) -> object:
    """A JSON body, strictly UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the JSON body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
                                "encode the request as UTF-8") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
                           ) from exc
    except RecursionError as exc:
        raise RequestError(400, "the JSON body is nested too deeply; send a flat object") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RequestError(400, f"the JSON body cannot be read: {exc}") from exc


def json_inputs(payload: object, modality: str, *, columns: Sequence[str] = (), path_columns: Sequence[str] = ()
                ) -> tuple[list[object], list[str]]:
    """JSON → (inputs, a display name per input) for a text or table model."""
    if not isinstance(payload, dict):
        raise RequestError(422, f"expected a JSON object, got {type(payload).__name__}; send "
                                + ('{"text": "…"} or {"texts": ["…", …]}' if modality == "text"
                                   else '{"row": {…}} or {"rows": [{…}, …]}'))
    if modality == "text":
        return _texts(payload)
    if modality == "table":
        return _rows(payload, columns, path_columns)
    raise RequestError(415, f"this model takes {modality} uploads, not JSON; send the file as multipart/form-data "
                            f"(field 'file', repeat it for a batch) or as a raw {modality}/* body")


def _texts(payload: JSONObject) -> tuple[list[object], list[str]]:
    keys = set(payload) & {"text", "texts"}
    if len(keys) != 1 or set(payload) - {"text", "texts"}:
        raise RequestError(422, 'a text model takes {"text": "…"} or {"texts": ["…", …]}; got keys '
                                + ", ".join(map(repr, sorted(payload))))
    if "text" in payload:
        texts, single = [payload["text"]], True
    else:
        texts, single = payload["texts"], False
        if not isinstance(texts, list) or not texts:
            raise RequestError(422, '"texts" must be a non-empty list of strings')
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        where = '"text"' if single else f'"texts"[{bad[0]}]'
        raise RequestError(422, f"{where} must be a string, got {type(texts[bad[0]]).__name__}")
    return list(texts), ["text"] if single else [f"texts[{i}]" for i in range(len(texts))]


def _rows(payload: JSONObject, columns: Sequence[str], path_columns: Sequence[str]
          ) -> tuple[list[object], list[str]]:
    keys = set(payload) & {"row", "rows"}
    if len(keys) != 1 or set(payload) - {"row", "rows"}:
        raise RequestError(422, 'a table model takes {"row": {column: value, …}} or {"rows": [{…}, …]}; got keys '
                                + ", ".join(map(repr, sorted(payload))))
    if "row" in payload:
        rows, names = [payload["row"]], ["row"]
    else:
        rows = payload["rows"]
        if not isinstance(rows, list) or not rows:
            raise RequestError(422, '"rows" must be a non-empty list of objects')
        names = [f"rows[{i}]" for i in range(len(rows))]
    out: list[object] = []
    for name, row in zip(names, rows, strict=True):
        if not isinstance(row, dict):
            raise RequestError(422, f"{name} must be an object of column → value, got {type(row).__name__}")
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise RequestError(422, f"{name} has columns the model was not trained on: {', '.join(unknown)}; it "
                                    f"uses: {', '.join(columns)}")
        for column, value in row.items():
            if column in path_columns and value not in (None, ""):
                raise RequestError(422, f"{name}: column '{column}' holds file paths, and the server never opens a "
                                        "path named in a request; leave the column out (the model then treats it "
                                        "as missing) or predict with `transferkit predict` on this machine")
            if isinstance(value, dict | list):
                raise RequestError(422, f"{name}: column '{column}' must be a number, a string or null, got "
                                        f"{type(value).__name__}")
        out.append({c: _cell(row.get(c)) for c in columns})
    return out, names


def _cell(value: object) -> object:
    """As `predict --row` reads a cell: None for missing, blank or null."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def upload_limits(options: ServeOptions) -> JSONObject:
    """The limits a client should know, for `/metadata`."""
    return {"max_body_mb": options.max_body_mb, "max_pixels": options.max_pixels,
            "max_audio_s": options.max_audio_s, "max_batch": options.max_batch,
            "idle_timeout_s": options.idle_timeout_s, "request_timeout_s": options.request_timeout_s}
