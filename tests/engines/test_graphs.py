"""A backbone's exported graph (`engines.graphs`): exported once, reused, and another one when the weights change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.engines.graphs import backbone_graph


def test_the_exported_graph_is_reused_and_follows_the_weights(tmp_path: Path) -> None:
    """A root of its own (not the worker's shared `graph_root`): another file's test exporting the same
    random-init resnet10t there first would make the first export here a reuse."""
    graph_root = tmp_path
    b = create_backbone("resnet10t", weights="random")
    path, reused = backbone_graph(b, root=graph_root)
    assert path.is_file() and not reused
    mtime = path.stat().st_mtime_ns
    again, reused = backbone_graph(b, root=graph_root)
    assert (again, reused) == (path, True) and again.stat().st_mtime_ns == mtime
    key = json.loads((path.parent / "key.json").read_text())
    assert key["backbone"] == "resnet10t" and key["inputs"][0]["shape"][0] == "batch" and key["opset"] >= 17
    with torch.no_grad():  # same name and weights_id, other numbers (a fine-tuned copy): another graph
        next(b.parameters()).add_(0.01)
    changed, reused = backbone_graph(b, root=graph_root)
    assert changed != path and not reused
    assert not [p for p in graph_root.rglob(".tmp-*")], "no temp files left behind"


def test_transferkit_engines_holds_the_graphs_of_every_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`$TRANSFERKIT_ENGINES` names one engines folder for every feature cache: a graph exported for one cache
    is reused by another, and no cache gets an `engines/` of its own; unset, each cache has its own."""
    b = create_backbone("resnet10t", weights="random")
    monkeypatch.setenv("TRANSFERKIT_ENGINES", str(tmp_path / "shared"))
    path, reused = backbone_graph(b, root=tmp_path / "project-a")
    assert not reused and path.is_relative_to(tmp_path / "shared")
    assert backbone_graph(b, root=tmp_path / "project-b") == (path, True)
    assert backbone_graph(b) == (path, True)  # the default cache too
    assert not (tmp_path / "project-a" / "engines").exists() and not (tmp_path / "project-b" / "engines").exists()
    monkeypatch.delenv("TRANSFERKIT_ENGINES")
    own, reused = backbone_graph(b, root=tmp_path / "project-a")
    assert not reused and own.is_relative_to(tmp_path / "project-a" / "engines")
