"""An export is used only as transferkit wrote it: the issue's four damaged exports (bit flips,
rolled head rows, a broken file, the wrong number of outputs) and non-finite probabilities."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported_run(probe_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferkit.estimators.onnx_export import export_model

    out = tmp_path_factory.mktemp("integrity") / "run"
    shutil.copytree(probe_run, out, ignore=shutil.ignore_patterns("onnx"))
    export_model(out)
    return out


@pytest.fixture
def run(exported_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(exported_run, copy)
    return copy


def _images(image_folder: Path, n: int = 6) -> list[str]:
    return sorted(str(p) for p in image_folder.rglob("*.jpg"))[:n]


def _predict(args: list[str]) -> tuple[int, str, str, BaseException | None]:
    from transferkit.commands import app

    result = CliRunner().invoke(app, ["predict", *args, "--json"], terminal_width=400)
    return result.exit_code, result.stdout, result.stderr, result.exception


def _flip_bits(path: Path) -> None:
    """XOR 0x40 on 3,000 random bytes in the last 70% of the file (the issue's first case)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.integers(int(0.3 * len(data)), len(data), 3000):
        data[i] ^= 0x40
    path.write_bytes(bytes(data))


def _edit_head(path: Path, change: Callable[[np.ndarray, int], np.ndarray]) -> None:
    """Apply `change(values, class_axis)` to the head's weight and bias (the initializers with a
    dimension of 3 = the number of classes), keeping a valid graph."""
    from onnx import numpy_helper

    graph = onnx.load(str(path))
    edited = 0
    for init in graph.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.ndim in (1, 2) and 3 in values.shape and values.size in (3, 3 * max(values.shape)):
            axis = values.shape.index(3)
            init.CopyFrom(numpy_helper.from_array(change(values, axis).astype(values.dtype), init.name))
            edited += 1
    assert edited >= 2, "the head's weight and bias were not found"
    onnx.save(graph, str(path))


def _reseal(folder: Path) -> None:
    """Record the current files' sha256 again, as if transferkit had written the export this way."""
    from transferkit.engines.exported import seal_record

    meta = json.loads((folder / "export.json").read_text())
    meta = seal_record({k: v for k, v in meta.items() if k not in ("files", "record_sha256")}, folder)
    (folder / "export.json").write_text(json.dumps(meta))


def test_the_export_records_the_sha256_of_every_file(run: Path) -> None:
    from transferkit.engines.exported import file_sha256, verify_export

    meta = json.loads((run / "onnx" / "export.json").read_text())
    assert meta["files"] == {"model.onnx": file_sha256(run / "onnx" / "model.onnx")}
    assert verify_export(run / "onnx")["labels"] == ["blue", "green", "red"]


@pytest.mark.parametrize("damage", ["bit flips", "rolled head rows", "first bytes", "truncated"])
def test_a_changed_export_is_never_used(run: Path, image_folder: Path, damage: str) -> None:
    graph = run / "onnx" / "model.onnx"
    if damage == "bit flips":
        _flip_bits(graph)
    elif damage == "rolled head rows":  # still a valid graph: every label would be wrong
        _edit_head(graph, lambda v, axis: np.roll(v, 1, axis=axis))
    elif damage == "first bytes":
        data = bytearray(graph.read_bytes())
        data[:64] = bytes(b ^ 0xFF for b in data[:64])
        graph.write_bytes(bytes(data))
    else:
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    images = _images(image_folder)
    # predict RUN: the bundle is used instead, and the note names the file
    code, out, err, _ = _predict([str(run), *images])
    assert code == 0, err
    note = " ".join(err.split())
    assert "model.onnx" in note and "predicted with the bundle instead" in note, note
    rows = json.loads(out[out.index("["):])
    from transferkit.estimators.load import load

    expected = load(run).predict(images)
    assert [r["label"] for r in rows] == list(expected)
    assert all(np.isfinite(r["probability"]) for r in rows)
    # --engine onnx, or the export folder itself: one clear error, exit 2, no traceback
    for args in ([str(run), *images, "--engine", "onnx"], [str(run / "onnx"), *images]):
        code, out, err, exc = _predict(args)
        from transferkit.errors import TransferkitError

        assert code != 0 and isinstance(exc, TransferkitError), (args, exc)
        assert "model.onnx" in str(exc) and "sha256" in str(exc)


def test_an_edited_record_is_refused(run: Path, image_folder: Path) -> None:
    from transferkit.engines.exported import ExportIntegrityError, verify_export

    record = run / "onnx" / "export.json"
    meta = json.loads(record.read_text())
    meta["labels"] = list(reversed(meta["labels"]))  # every label wrong, the graph untouched
    record.write_text(json.dumps(meta))
    with pytest.raises(ExportIntegrityError, match=r"export\.json was changed"):
        verify_export(run / "onnx")
    del meta["files"], meta["record_sha256"]  # as an older transferkit wrote it: nothing to check against
    record.write_text(json.dumps(meta))
    with pytest.raises(ExportIntegrityError, match="records no sha256"):
        verify_export(run / "onnx")


@pytest.mark.parametrize("damage", ["first bytes", "truncated"])
def test_an_unreadable_graph_is_one_clear_message(run: Path, image_folder: Path, damage: str) -> None:
    from transferkit.errors import EngineError

    graph = run / "onnx" / "model.onnx"
    data = graph.read_bytes()
    graph.write_bytes(bytes(b ^ 0xFF for b in data[:64]) + data[64:] if damage == "first bytes"
                      else data[: len(data) // 3])
    _reseal(run / "onnx")  # its checksums agree: the graph itself must be refused, clearly
    code, _, _, exc = _predict([str(run), *_images(image_folder, 2), "--engine", "onnx"])
    assert code != 0 and isinstance(exc, EngineError), exc
    assert "model.onnx cannot be read as a graph" in str(exc) and "export it again" in str(exc)
    if damage == "first bytes":  # the command itself: one line, exit 2, no traceback
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "-m", "transferkit", "predict", str(run), *_images(image_folder, 1),
                               "--engine", "onnx"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error:") and "cannot be read as a graph" in done.stderr


def test_a_graph_with_the_wrong_number_of_outputs_is_refused(run: Path, image_folder: Path) -> None:
    from transferkit.errors import EngineError

    # 5 outputs for 3 labels: the head grows two rows (zeros), a valid graph
    def grow(values: np.ndarray, axis: int) -> np.ndarray:
        pad = [(0, 0)] * values.ndim
        pad[axis] = (0, 2)
        return np.pad(values, pad)

    _edit_head(run / "onnx" / "model.onnx", grow)
    _reseal(run / "onnx")
    code, _, _, exc = _predict([str(run), *_images(image_folder, 2), "--engine", "onnx"])
    assert code != 0 and isinstance(exc, EngineError), exc
    assert "5 probabilities per input" in str(exc) and "3 labels" in str(exc)


def test_non_finite_probabilities_are_an_error_naming_the_input(run: Path, image_folder: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from transferkit.errors import EngineError

    _edit_head(run / "onnx" / "model.onnx", lambda v, axis: v * np.float32("nan"))
    _reseal(run / "onnx")
    images = _images(image_folder, 3)
    code, out, _, exc = _predict([str(run), *images, "--engine", "onnx"])
    assert code != 0 and isinstance(exc, EngineError), exc
    assert "non-finite" in str(exc) and images[0] in str(exc) and '"label"' not in out
    # the bundle's own road (PyTorch) is held to the same rule
    from transferkit.estimators.probe import TransferClassifier

    real = TransferClassifier.proba_from_features

    def poisoned(self: TransferClassifier, values: np.ndarray) -> np.ndarray:
        proba = real(self, values)
        proba[1] = np.inf
        return proba

    monkeypatch.setattr(TransferClassifier, "proba_from_features", poisoned)
    code, out, _, exc = _predict([str(run), *images, "--engine", "torch"])
    assert code != 0 and isinstance(exc, EngineError) and images[1] in str(exc), exc
