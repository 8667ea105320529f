"""`transferkit fit` end to end on a tiny generated dataset, in-process through the real entry point: its cache,
its data errors (manifests, empty folders, one class, unknown backbones), pre-split folders and groups."""

from __future__ import annotations

import json
import re
import shutil

from tests.commands.conftest import TINY


def test_second_fit_extracts_nothing(cli, image_folder, tmp_path) -> None:
    cli("fit", image_folder, "--out", tmp_path / "a", "--json", "--cache-dir", tmp_path / "cache", *TINY)
    code, output = cli("fit", image_folder, "--out", tmp_path / "b", "--json", "--cache-dir", tmp_path / "cache", *TINY)
    assert code == 0
    summary = json.loads(output)
    assert summary["extracted"] == 0 and summary["cached"] > 0


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
