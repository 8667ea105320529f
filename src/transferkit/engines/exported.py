"""Predict with an exported model: one ONNX graph (backbone + head + softmax) and its preprocessing.

Imports neither torch nor any transferkit module that does (numpy, PIL, onnxruntime only), so a
process that predicts from an export never loads PyTorch. `transferkit export RUN` writes the
folder this reads: `model.onnx` (uint8 images [B, 3, H, W] in, probabilities [B, classes] out) and
`export.json` (labels, preprocessing, the parity measured at export).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.data.images import image_array
from transferkit.engines.run import open_graph
from transferkit.errors import ConfigError

#: the file an export folder is recognised by
EXPORT_FILE = "export.json"
GRAPH_FILE = "model.onnx"


#: the weights file of the bundle an export was made from (`bundle.WEIGHTS`)
BUNDLE_WEIGHTS = "model.safetensors"


def is_export(path: str | Path) -> bool:
    return (Path(path) / EXPORT_FILE).is_file() and (Path(path) / GRAPH_FILE).is_file()


def bundle_digest(run: str | Path) -> str | None:
    """sha256 of a bundle's weights file (None without one): what an export records of its source."""
    from transferkit.packages import sha256_file

    weights = Path(run) / BUNDLE_WEIGHTS
    return sha256_file(weights) if weights.is_file() else None


def current_export(run: str | Path) -> tuple[Path | None, str | None]:
    """`RUN/onnx` when it is an export of RUN's weights as they are now, else None and why not
    (None, None: there is no export)."""
    folder = Path(run) / "onnx"
    if not is_export(folder):
        return None, None
    try:
        recorded = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8")).get("bundle_weights_sha256")
    except (OSError, ValueError, AttributeError):
        return None, f"{folder / EXPORT_FILE} cannot be read"
    if recorded is None or recorded != bundle_digest(run):
        return None, (f"{folder} was exported from other weights than {run} holds now (or by an older "
                      f"transferkit); re-export it: transferkit export {run} --overwrite")
    return folder, None


class ExportedModel:
    """`predict_proba` / `predict` of an export folder, on ONNX Runtime."""

    def __init__(self, folder: str | Path, *, threads: int | None = None) -> None:
        self.folder = Path(folder)
        if not is_export(self.folder):
            raise ConfigError(f"{self.folder} is not an export folder (no {EXPORT_FILE} + {GRAPH_FILE}); "
                              "write one with: transferkit export RUN")
        self.meta: dict[str, Any] = json.loads((self.folder / EXPORT_FILE).read_text(encoding="utf-8"))
        self.labels = np.array(self.meta["labels"])
        self.preprocess: dict[str, Any] = self.meta["preprocess"]
        self.runner = open_graph(self.folder / GRAPH_FILE, "onnxruntime", threads=threads)

    def arrays(self, items: Sequence[Any]) -> np.ndarray:
        return np.stack([image_array(item, self.preprocess) for item in items])

    def predict_proba(self, items: Sequence[Any], *, batch_size: int = 32) -> np.ndarray:
        return self.probabilities(self.arrays(items), batch_size=batch_size)

    def probabilities(self, arrays: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Probabilities of preprocessed uint8 images [N, 3, H, W] (what `arrays` gives), in batches."""
        out = [self.runner({self.meta["input"]: arrays[i:i + batch_size]}) for i in range(0, len(arrays), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, items: Sequence[Any]) -> np.ndarray:
        return self.labels[np.argmax(self.predict_proba(items), axis=1)]
