"""Every CLI command end to end on a tiny generated dataset, in-process through the real entry point."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: a tiny random-init network, for the tests about the command rather than the model's accuracy
TINY = ("--backbone", "test_efficientnet", "--weights", "random")


@pytest.fixture(scope="module")
def trained(cli, image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "colours"
    code, output = cli("fit", image_folder, "--out", out, "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["accuracy"] >= 0.8 and summary["n_test"] > 0
    return out


def test_fit_prints_counts_metrics_and_saves(cli, image_folder, tmp_path) -> None:
    code, output = cli("fit", image_folder, "--out", tmp_path / "m", *TINY)
    assert code == 0, output
    # the class-count table: one row per class with its train / val / test / total counts (10 images each)
    for cls in ("red", "green", "blue"):
        assert re.search(rf"│ {cls}\s+│\s+\d+\s+│\s+\d+\s+│\s+\d+\s+│\s+10\s+│", output), output
    assert re.search(r"│ all\s+│\s+\d+\s+│\s+\d+\s+│\s+\d+\s+│\s+30\s+│", output)
    assert re.search(r"test \(\d+ examples\)", output) and "confusion matrix" in output
    assert re.search(r"\d+\.\d\d%", output)  # the accuracy figure itself
    assert f"saved {tmp_path / 'm'}" in output.replace("\n", "")
    assert (tmp_path / "m" / "transferkit.json").is_file()


def test_second_fit_extracts_nothing(cli, image_folder, tmp_path) -> None:
    cli("fit", image_folder, "--out", tmp_path / "a", "--json", "--cache-dir", tmp_path / "cache", *TINY)
    code, output = cli("fit", image_folder, "--out", tmp_path / "b", "--json", "--cache-dir", tmp_path / "cache", *TINY)
    assert code == 0
    summary = json.loads(output)
    assert summary["extracted"] == 0 and summary["cached"] > 0


def test_predict_table_json_csv(cli, trained, image_folder, tmp_path) -> None:
    # inputs whose paths name no class, so a label in the output is the prediction, not the path
    files = [tmp_path / "first.jpg", tmp_path / "second.jpg"]
    shutil.copy(image_folder / "red" / "000.jpg", files[0])
    shutil.copy(image_folder / "blue" / "001.jpg", files[1])
    code, output = cli("predict", trained, *files, "--json")
    assert code == 0
    rows = json.loads(output)
    assert [r["label"] for r in rows] == ["red", "blue"]
    assert all(0 < r["probability"] <= 1 for r in rows)
    code, output = cli("predict", trained, *files, "--csv")
    parsed = list(csv.DictReader(io.StringIO(output)))
    assert [r["label"] for r in parsed] == ["red", "blue"]
    code, output = cli("predict", trained, files[0], "--top-k", "2")
    ranked = re.findall(r"│\s*(red|green|blue)\s*│\s*([0-9.]+)\s*│", output)  # the table's label and probability
    assert code == 0 and [label for label, _ in ranked][:1] == ["red"] and len(ranked) == 2, output
    assert float(ranked[0][1]) >= float(ranked[1][1])


def test_predict_reports_unreadable_input(cli, trained, image_folder, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    code, output = cli("predict", trained, image_folder / "red" / "000.jpg", bad, "--json")
    assert code == 0
    rows = json.loads(output)
    assert rows[0]["label"] == "red"
    assert rows[1]["label"] is None and "bad.jpg" in rows[1]["error"]
    code, output = cli("predict", trained, bad, "--json")  # nothing could be read: a failure, not exit 0
    assert code == 2 and "none of the 1 input(s) could be read" in output and "bad.jpg" in output


def test_evaluate_on_a_new_folder(cli, trained, image_folder) -> None:
    code, output = cli("evaluate", trained, image_folder, "--json")
    assert code == 0
    metrics = json.loads(output)
    assert metrics["accuracy"] > 0.8 and set(metrics["per_class"]) == {"red", "green", "blue"}


def test_models_lists_zoo_with_availability(cli) -> None:
    code, output = cli("models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(output)}
    assert rows["efficientnet_lite0"]["available"] is True
    assert rows["efficientnet_lite0"]["features"] == 1280
    assert rows["efficientnet_lite2"]["input"] == "260x260"


def test_manifest_with_missing_paths_names_the_rows(cli, tmp_path) -> None:
    manifest = tmp_path / "data.csv"
    manifest.write_text("path,label\nnowhere/a.jpg,cat\nnowhere/b.jpg,dog\n")
    code, output = cli("fit", manifest, "--out", tmp_path / "m")
    assert code == 2 and "data.csv" in output and "a.jpg" in output


def test_manifest_without_label_column(cli, tmp_path, image_folder) -> None:
    manifest = tmp_path / "data.csv"
    manifest.write_text(f"path,kind\n{image_folder / 'red' / '000.jpg'},x\n")
    code, output = cli("fit", manifest, "--out", tmp_path / "m")
    assert code == 2 and "label" in output and "kind" in output


def test_refuses_to_write_into_a_users_folder(cli, image_folder, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    code, output = cli("fit", image_folder, "--out", tmp_path)
    assert code == 2 and "not a transferkit bundle" in output
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_unknown_backbone_lists_close_matches(cli, image_folder, tmp_path) -> None:
    code, output = cli("fit", image_folder, "--out", tmp_path / "m", "--backbone", "efficientnet_lite")
    # the close matches, not the list of every registered name (which holds efficientnet_lite0 anyway)
    assert code == 2 and re.search(r"Did you mean: [^?]*efficientnet_lite0[^?]*\?", output), output
    code, output = cli("fit", image_folder, "--out", tmp_path / "m", "--backbone", "efficientnet_lite0+logmell")
    assert code == 2 and "'+logmell'" in output and "Did you mean '+logmel'?" in output, output


def test_empty_folder_and_single_class(cli, tmp_path, image_folder) -> None:
    (tmp_path / "nothing-here").mkdir()
    code, output = cli("fit", tmp_path / "nothing-here", "--out", tmp_path / "m")
    assert code == 2 and "folder is empty" in output and "one sub-folder per class" in output, output
    one = tmp_path / "one"
    shutil.copytree(image_folder / "red", one / "red")
    code, output = cli("fit", one, "--out", tmp_path / "m2")
    assert code == 2 and "only one class" in output


def test_presplit_folder_is_respected(cli, image_folder, tmp_path) -> None:
    root = tmp_path / "split"
    for split, names in (("train", range(0, 7)), ("test", range(7, 10))):
        for cls in ("red", "blue"):
            (root / split / cls).mkdir(parents=True)
            for i in names:
                shutil.copy(image_folder / cls / f"{i:03d}.jpg", root / split / cls)
    code, output = cli("fit", root, "--out", tmp_path / "m", "--json", *TINY)
    assert code == 0, output
    assert json.loads(output)["n_test"] == 6


def test_console_script_shows_errors_without_traceback(tmp_path) -> None:
    exe = Path(sys.executable).with_name("transferkit")
    if not exe.exists():
        pytest.skip("console script not installed")
    proc = subprocess.run([str(exe), "fit", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_groups_from_folders_are_held_out_whole(cli, tmp_path) -> None:
    """DATA/<class>/<group>/…: validation and test hold whole groups (a group never on both sides)."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "sites"
    rng = np.random.default_rng(0)
    for site in range(5):
        for cls, colour in (("red", (200, 40, 40)), ("green", (40, 190, 60)), ("blue", (40, 60, 210))):
            folder = root / cls / f"site{site}"
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = (np.array(colour) + rng.normal(0, 40, (32, 32, 3))).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    code, output = cli("fit", root, "--group-column", "folder", "--out", tmp_path / "m", "--json",
                       "--backbone", "test_efficientnet", "--weights", "random")
    assert code == 0, output
    manifest = json.loads((tmp_path / "m" / "transferkit.json").read_text())
    assert manifest["data"]["group_column"] == "folder"
    from transferkit.data import load_dataset, split_indices

    data = load_dataset(root, group_column="folder")
    assert data.groups is not None and set(data.groups) == {f"site{i}" for i in range(5)}
    splits = split_indices(data.labels, groups=data.groups, seed=0)
    sides = {s: {data.groups[i] for i in idx} for s, idx in splits.items()}
    assert sides["val"] and sides["test"] and not (sides["train"] & (sides["val"] | sides["test"]))
    code, output = cli("fit", root, "--group-column", "site", "--out", tmp_path / "n")
    assert code == 2 and "groups come from a folder level" in output
