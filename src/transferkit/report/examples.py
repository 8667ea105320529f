"""How one example looks in the report: a thumbnail for an image, a snippet for a text, a waveform
and spectrogram for a clip, the cells of a table row. Whatever cannot be shown says why instead.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from transferkit.jsontypes import JSONObject
from transferkit.report import plots

THUMBNAIL = 128
SNIPPET = 280
CELL = 80
#: longest stretch of a clip drawn (seconds); longer clips show their start
AUDIO_SECONDS = 10.0


def describe(item: object, modality: str, columns: list[JSONObject] | None = None) -> dict[str, object]:
    """What the template shows for `item`: a `name` and one of `image`, `text` or `cells`, or `note`."""
    if modality == "text":
        text = " ".join(str(item).split())
        return {"name": None, "text": text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"}
    if modality == "table":
        return _row(item, columns or [])
    name = "/".join(Path(str(item)).parts[-2:]) if isinstance(item, str | Path) else None
    try:
        if modality == "audio":
            return {"name": name, "image": _audio(item)}
        return {"name": name, "image": thumbnail(item)}
    except Exception as exc:  # the example was read for the metrics; showing it is best effort
        return {"name": name, "note": f"cannot show it: {exc}"}


def thumbnail(item: object, size: int = THUMBNAIL) -> str:
    """An image file (or PIL image) as a PNG data URI at most `size` pixels on a side."""
    from PIL import Image

    from transferkit.data.images import image_source, open_image

    img = open_image(image_source(item))
    img.thumbnail((size, size))
    if max(img.size) < size // 2:  # tiny images (glyphs, icons) are enlarged, keeping their pixels sharp
        scale = size // max(img.size)
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return plots.png_uri(buf.getvalue())


def _audio(item: object) -> str:
    from transferkit.data.audio_clips import read_audio

    if isinstance(item, tuple):
        wave, rate = np.asarray(item[0], np.float32), int(item[1])
    elif isinstance(item, str | Path):
        wave, rate = read_audio(item)
    else:
        raise TypeError(f"an audio example is a file or (samples, rate), not {type(item).__name__}")
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    return plots.audio_clip(wave[: int(AUDIO_SECONDS * rate)], rate)


def _row(row: object, columns: list[JSONObject]) -> dict[str, object]:
    kinds = {str(c["name"]): str(c.get("kind", "")) for c in columns}
    cells: list[dict[str, str]] = []
    image = None
    for name, value in (row.items() if isinstance(row, dict) else []):
        kind = kinds.get(str(name), "")
        shown = "(missing)" if value is None else str(value)
        if kind in ("image", "audio") and value is not None:
            shown = Path(str(value)).name
            if kind == "image" and image is None:
                try:
                    image = thumbnail(value, size=96)
                except Exception:  # a missing or unreadable cell was masked for the model too
                    image = None
        cells.append({"column": str(name), "kind": kind,
                      "value": shown if len(shown) <= CELL else shown[: CELL - 1] + "…"})
    return {"name": None, "cells": cells, "image": image}
