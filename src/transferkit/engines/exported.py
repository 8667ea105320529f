"""Predict with an exported model: one ONNX graph (backbone + head + softmax) and its preprocessing.

Imports neither torch nor any transferkit module that does (numpy, PIL, onnxruntime only), so a
process that predicts from an export never loads PyTorch. `transferkit export RUN` writes the
folder this reads: `model.onnx` (uint8 images [B, 3, H, W] in, probabilities [B, classes] out) and
`export.json` (labels, preprocessing, the parity measured at export).

**Trusted only as written.** `export.json` records the sha256 of every other file of the export
(`"files"`) and of its own content (`"record_sha256"`, over the record without that field). An
export is checked against them before use (`verify_export`): a changed, truncated or missing
file raises `ExportIntegrityError` naming it (`predict RUN` then uses the bundle instead, and says
so). Once loaded, the graph must give one probability per label, and every probability it gives
must be finite: anything else is an error naming the input, never a prediction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transferkit.data.images import image_array
from transferkit.engines.run import open_graph
from transferkit.errors import BundleError, ConfigError, EngineError
from transferkit.jsontypes import JSONObject
from transferkit.params import BATCH_SIZE

#: the file an export folder is recognised by
EXPORT_FILE = "export.json"
GRAPH_FILE = "model.onnx"


#: the weights file of the bundle an export was made from (`bundle.WEIGHTS`)
BUNDLE_WEIGHTS = "model.safetensors"


class ExportIntegrityError(BundleError):
    """An export folder is not exactly what transferkit wrote (a file changed, truncated or missing)."""


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read now (never memoised: a check must see the bytes as they are)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_digest(meta: JSONObject) -> str:
    """sha256 of an export record without its own `record_sha256` field (canonical JSON)."""
    body = {k: v for k, v in meta.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def seal_record(meta: JSONObject, folder: str | Path) -> JSONObject:
    """`meta` with the sha256 of every file now in `folder` (but export.json) and of itself added."""
    root = Path(folder)
    files = {p.name: file_sha256(p) for p in sorted(root.iterdir()) if p.is_file() and p.name != EXPORT_FILE}
    sealed = {**meta, "files": files}
    return {**sealed, "record_sha256": record_digest(sealed)}


def verify_export(folder: str | Path) -> JSONObject:
    """The export record of `folder`, once every file it lists has the sha256 it recorded.

    Raises `ExportIntegrityError` naming the first file that differs (or the record itself)."""
    root = Path(folder)
    record = root / EXPORT_FILE
    redo = "re-export it: transferkit export RUN --overwrite (RUN: the bundle it was made from)"
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportIntegrityError(f"{record} cannot be read ({type(exc).__name__}: {exc}); {redo}") from exc
    if not isinstance(meta, dict):
        raise ExportIntegrityError(f"{record} is not an export record (a JSON object); {redo}")
    files = meta.get("files")
    if not isinstance(files, dict) or GRAPH_FILE not in files or "record_sha256" not in meta:
        raise ExportIntegrityError(f"{record} records no sha256 of the export's files (written by an older "
                                   f"transferkit, or edited), so {root / GRAPH_FILE} cannot be checked; {redo}")
    if meta["record_sha256"] != record_digest(meta):
        raise ExportIntegrityError(f"{record} was changed after it was written (its content no longer matches "
                                   f"its recorded sha256); {redo}")
    for name, expected in sorted(files.items(), key=lambda kv: kv[0] != GRAPH_FILE):
        path = root / str(name)
        if Path(str(name)).name != name:
            raise ExportIntegrityError(f"{record} lists '{name}', which is not a file of the export folder; {redo}")
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise ExportIntegrityError(f"{path} cannot be read ({exc.strerror or exc}); {redo}") from exc
        if actual != expected:
            raise ExportIntegrityError(f"{path} is not the file transferkit exported: its sha256 differs from the one "
                                       f"{EXPORT_FILE} recorded (changed, damaged or truncated since); {redo}")
    return meta


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
    try:
        verify_export(folder)
    except ExportIntegrityError as exc:
        return None, f"{exc}".replace("transferkit export RUN", f"transferkit export {run}")
    return folder, None


class ExportedModel:
    """`predict_proba` / `predict` of an export folder, on ONNX Runtime."""

    def __init__(self, folder: str | Path, *, threads: int | None = None) -> None:
        self.folder = Path(folder)
        if not is_export(self.folder):
            raise ConfigError(f"{self.folder} is not an export folder (no {EXPORT_FILE} + {GRAPH_FILE}); "
                              "write one with: transferkit export RUN")
        self.meta: JSONObject = verify_export(self.folder)
        self.labels = np.array(self.meta["labels"])
        self.preprocess: JSONObject = self.meta["preprocess"]
        self.runner = open_graph(self.folder / GRAPH_FILE, "onnxruntime", threads=threads)
        width = self.runner.output_width()
        if width is not None and width != len(self.labels):
            raise self._shape_error(width)

    def arrays(self, items: Sequence[object]) -> np.ndarray:
        return np.stack([image_array(item, self.preprocess) for item in items])

    def predict_proba(self, items: Sequence[object], *, batch_size: int = BATCH_SIZE.default) -> np.ndarray:
        return self.probabilities(self.arrays(items), batch_size=batch_size)

    def probabilities(self, arrays: np.ndarray, *, batch_size: int = BATCH_SIZE.default) -> np.ndarray:
        """Probabilities of preprocessed uint8 images [N, 3, H, W] (what `arrays` gives), in batches."""
        out = [self.runner({self.meta["input"]: arrays[i:i + batch_size]}) for i in range(0, len(arrays), batch_size)]
        for got in out:
            if got.ndim != 2 or got.shape[1] != len(self.labels):
                raise self._shape_error(got.shape[1] if got.ndim == 2 else None, got.shape)
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def _shape_error(self, width: int | None, shape: tuple[int, ...] | None = None) -> EngineError:
        got = f"{width} probabilities per input" if width is not None else f"an output of shape {shape}"
        return EngineError(f"{self.folder / GRAPH_FILE} gives {got}, but {EXPORT_FILE} lists {len(self.labels)} "
                           "labels: the graph is not the model it claims to be; re-export it: transferkit export "
                           "RUN --overwrite")

    def predict(self, items: Sequence[object]) -> np.ndarray:
        return self.labels[np.argmax(self.predict_proba(items), axis=1)]
