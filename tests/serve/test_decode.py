"""Request bodies decoded in memory (`serve.decode`), without a server: each problem is a `RequestError` with
its 4xx and a message saying what was received; a table row's path column is never opened."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from transferkit.serve.decode import RequestError, decode_audio, decode_image, json_inputs, parse_json


def refused(status: int, words: str, call: object, *args: object, **kwargs: object) -> None:
    with pytest.raises(RequestError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.status == status and words in caught.value.message, caught.value.message


def test_images_are_decoded_from_bytes_and_refused_by_their_header() -> None:
    png = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(png, format="PNG")
    img = decode_image(png.getvalue(), "a.png", max_pixels=600)
    assert img.size == (30, 20) and img.convert("RGB").getpixel((0, 0)) == (200, 10, 10)
    refused(413, "30x20 = 600 pixels, over the limit of 599", decode_image, png.getvalue(), "a.png", max_pixels=599)
    refused(422, "empty upload", decode_image, b"", "a.png", max_pixels=600)
    refused(422, "not an image", decode_image, b"these bytes are no image" * 4, "b.gif", max_pixels=600)


def test_audio_is_decoded_and_its_length_checked_from_the_header() -> None:
    wav = io.BytesIO()
    sf.write(wav, np.zeros(8000, np.float32), 16000, format="WAV")
    samples, rate = decode_audio(wav.getvalue(), "a.wav", max_seconds=1.0)
    assert samples.shape == (8000, 1) and samples.dtype == np.float32 and rate == 16000
    refused(413, "clip lasts 0.5 s, over the limit of 0.4 s", decode_audio, wav.getvalue(), "a.wav", max_seconds=0.4)
    refused(422, "not audio", decode_audio, b"RIFF....WAVEfmt broken", "b.wav", max_seconds=1.0)


def test_json_bodies_are_strict() -> None:
    assert parse_json('{"text": "café"}'.encode()) == {"text": "café"}
    refused(400, "not UTF-8 (byte 0xe9 at offset 13)", parse_json, b'{"text": "caf\xe9"}')
    refused(400, "not valid JSON", parse_json, b'{"text": ')
    refused(400, "nested too deeply", parse_json, b"[" * 100_000 + b"]" * 100_000)


def test_texts_and_rows_from_json() -> None:
    assert json_inputs({"texts": ["a", "b"]}, "text") == (["a", "b"], ["texts[0]", "texts[1]"])
    assert json_inputs({"text": "a"}, "text") == (["a"], ["text"])
    refused(422, '"texts"[1] must be a string', json_inputs, {"texts": ["a", 5]}, "text")
    refused(422, "got keys 'sentence'", json_inputs, {"sentence": "a"}, "text")
    refused(415, "takes image uploads, not JSON", json_inputs, {"text": "a"}, "image")
    columns = ("photo", "size", "shape")
    rows, names = json_inputs({"rows": [{"size": 1.5, "shape": " "}, {"photo": None, "size": float("nan")}]}, "table",
                              columns=columns, path_columns=("photo",))
    assert names == ["rows[0]", "rows[1]"]
    assert rows == [{"photo": None, "size": 1.5, "shape": None}, {"photo": None, "size": None, "shape": None}]
    refused(422, "never opens a path", json_inputs, {"row": {"photo": "/etc/passwd"}}, "table", columns=columns,
            path_columns=("photo",))
    refused(422, "not trained on: colour", json_inputs, {"row": {"colour": "red"}}, "table", columns=columns)
    refused(422, "must be a number, a string or null, got list", json_inputs, {"row": {"size": [1]}}, "table",
            columns=columns)
