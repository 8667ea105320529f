"""`transferkit.rank`, `transferkit rank`, `fit --backbone auto` and layer ranking, end to end.

On a tiny generated image folder (3 colour classes) with the real zoo EfficientNet-Lite0 and a
random-init copy of it as the control: ranking must prefer the pretrained weights, fitting after
ranking must reuse the cached features, and the CLI must say what it picked and why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import transferkit
from transferkit.errors import ConfigError, DataError
from transferkit.features import ExtractOptions

CANDIDATES = ["efficientnet_lite0", "efficientnet_lite0@random"]
OPTIONS = ExtractOptions(progress=False, num_workers=0, batch_size=32)


def test_rank_api_prefers_pretrained_and_reuses_cache(shapes: Path, cache_dir: Path) -> None:
    table = transferkit.rank(shapes, backbones=CANDIDATES, metrics="logme,leep,nce", cache=cache_dir,
                             options=OPTIONS)
    assert [r.name for r in table.rows] == CANDIDATES
    assert table.pick == "efficientnet_lite0" and table.picked_by == "logme"
    assert "knn" in table.metrics and table.row("efficientnet_lite0").scores["leep"] is not None
    assert table.row("efficientnet_lite0").num_features == 1280
    df = table.to_pandas()
    assert len(df) == 2 and df["picked"].sum() == 1
    assert "efficientnet_lite0@random" in str(table)
    # a second ranking extracts nothing and gives the same scores (same seed, same result)
    again = transferkit.rank(shapes, backbones=CANDIDATES, metrics="logme,leep,nce", cache=cache_dir,
                             options=OPTIONS)
    assert all(r.cached == r.n_samples for r in again.rows)
    assert [r.scores for r in again.rows] == [r.scores for r in table.rows]


def test_rank_bad_input(shapes: Path, cache_dir: Path) -> None:
    paths = sorted(str(p) for p in shapes.rglob("*.png"))[:6]
    with pytest.raises(DataError, match="at least 2 classes"):
        transferkit.rank(paths, ["a"] * 6, backbones=["efficientnet_lite0"], cache=cache_dir, options=OPTIONS)
    with pytest.raises(ConfigError, match="unknown transferability metric"):
        transferkit.rank(paths, ["a", "b"] * 3, metrics="logmee", cache=cache_dir, options=OPTIONS)
    with pytest.raises(ConfigError, match="NAME@WEIGHTS"):
        transferkit.rank(paths, ["a", "b"] * 3, backbones=["efficientnet_lite0@"], cache=cache_dir,
                         options=OPTIONS)


def test_cli_rank_json_and_fit_backbone_auto(shapes: Path, cache_dir: Path, tmp_path: Path) -> None:
    """`transferkit rank` picks the pretrained network too (its table from the cache the API filled); then
    `fit --backbone auto:…` scores every candidate and combination on validation and fits the best.
    (The command's own behaviour, on tiny networks: `tests/commands/test_rank.py`.)"""
    from transferkit.commands import app

    runner = CliRunner()
    result = runner.invoke(app, ["rank", str(shapes), "--backbones", ",".join(CANDIDATES), "--metrics", "logme",
                                 "--json", "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["pick"] == "efficientnet_lite0" and "highest LogME" in report["reason"]
    assert {c["name"] for c in report["candidates"]} == set(CANDIDATES)

    out = tmp_path / "model"
    result = runner.invoke(app, ["fit", str(shapes), "--backbone", "auto:" + ",".join(CANDIDATES),
                                 "--strategy", "auto", "--out", str(out), "--cache-dir", str(cache_dir)],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    # fit scores every candidate on validation with the real head, then their combinations
    assert "candidates scored on validation" in result.output and "← fitted" in result.output
    assert "--strategy auto: probe" in result.output and "small data" in result.output
    manifest = json.loads((out / "transferkit.json").read_text())
    selection = manifest["ranking"]
    assert {r["name"] for r in selection["rows"] if r["kind"] == "single"} == set(CANDIDATES)
    assert {r["kind"] for r in selection["rows"]} == {"single", "concat", "ensemble"}
    best = max(r["val_accuracy"] for r in selection["rows"])
    winner = next(r for r in selection["rows"] if r["name"] == selection["winner"])
    assert winner["val_accuracy"] == best  # what was fitted is what validated best


def test_labels_are_refused_beside_a_folder_name() -> None:
    """`rank("ab", labels=[...])` once ranked the characters 'a' and 'b' as two items."""
    from transferkit.ranking.rank_backbones import as_labelled_data

    with pytest.raises(ConfigError, match="carries its own labels"):
        as_labelled_data("ab", ["x", "y"])
