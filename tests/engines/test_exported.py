"""An export folder's integrity (`engines.exported`), on hand-written files: every file's sha256 and the record's
own are sealed in export.json, and a changed file or record is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferkit.engines.exported import (
    EXPORT_FILE,
    GRAPH_FILE,
    ExportIntegrityError,
    current_export,
    seal_record,
    verify_export,
)


def sealed_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / GRAPH_FILE).write_bytes(b"graph bytes")
    (root / "labels.json").write_text('["a", "b"]')
    (root / EXPORT_FILE).write_text(json.dumps(seal_record({"format": "test"}, root)))
    return root


def test_a_sealed_export_verifies_and_any_change_is_named(tmp_path: Path) -> None:
    folder = sealed_folder(tmp_path / "onnx")
    assert set(verify_export(folder)["files"]) == {GRAPH_FILE, "labels.json"}
    (folder / "labels.json").write_text('["a", "c"]')
    with pytest.raises(ExportIntegrityError, match=r"labels\.json is not the file transferkit exported"):
        verify_export(folder)
    folder = sealed_folder(tmp_path / "edited")
    meta = json.loads((folder / EXPORT_FILE).read_text())
    meta["format"] = "other"
    (folder / EXPORT_FILE).write_text(json.dumps(meta))
    with pytest.raises(ExportIntegrityError, match="was changed after it was written"):
        verify_export(folder)
    folder = sealed_folder(tmp_path / "gone")
    (folder / GRAPH_FILE).unlink()
    with pytest.raises(ExportIntegrityError, match="cannot be read"):
        verify_export(folder)


def test_a_bundles_export_is_used_only_while_it_matches_the_bundle(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert current_export(run) == (None, None)  # no export at all
    sealed_folder(run / "onnx")
    folder, why = current_export(run)
    assert folder is None and why is not None and "exported from other weights" in why
