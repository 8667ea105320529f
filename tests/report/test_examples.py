"""Examples shown as their modality (`report.examples`): a thumbnail, a waveform, a snippet, a row's cells."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image


def test_examples_show_as_their_modality(tmp_path: Path) -> None:
    """A thumbnail for an image, a waveform + spectrogram for a clip, a snippet for text, cells for a row."""
    import soundfile as sf

    from transferkit.report.examples import describe

    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "tiny.png")
    image = describe(str(tmp_path / "tiny.png"), "image")
    shown = Image.open(io.BytesIO(base64.b64decode(image["image"].split(",", 1)[1])))
    assert shown.size[0] >= 64  # an 8×8 glyph is enlarged to be seen
    t = np.arange(8000) / 8000
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    clip = describe(str(tmp_path / "tone.wav"), "audio")
    assert clip["image"].startswith("data:image/png;base64,") and clip["name"].endswith("tone.wav")
    text = describe("word " * 200, "text")
    assert len(text["text"]) <= 280 and text["text"].endswith("…")
    row = describe({"title": "red kettle", "price": None, "photo": "/nowhere/x.jpg"}, "table",
                   [{"name": "title", "kind": "text"}, {"name": "price", "kind": "numeric"},
                    {"name": "photo", "kind": "image"}])
    assert [c["value"] for c in row["cells"]] == ["red kettle", "(missing)", "x.jpg"] and row["image"] is None
    assert "cannot show it" in describe(str(tmp_path / "missing.png"), "image")["note"]
