"""Nothing the user has is lost: `--out` is transferkit's only when transferkit marked it so (issue 12).

Bundles and fine-tuning run folders are recognised by the format marker inside the JSON files
transferkit writes, never by a file name; `--overwrite` replaces only the files transferkit wrote
(a bundle's manifest lists them) and refuses a folder holding anything else, naming it.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from transferkit.bundle import (
    MANIFEST,
    check_writable,
    is_bundle,
    load_bundle,
    read_manifest,
    save_bundle,
)
from transferkit.errors import BundleError, ConfigError
from transferkit.finetune.checkpoint import read_run, write_run

# a tiny random-init network: what is checked is the folder handling, never the model
FAST = ["--backbone", "test_efficientnet", "--weights", "random", "--batch-size", "16"]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (relative path → bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def start_run(out: Path, *, overwrite: bool) -> None:
    from transferkit.finetune.checkpoint import start_run

    start_run(out, overwrite=overwrite)


def tiny_bundle(folder: Path, **manifest: object) -> Path:
    return save_bundle(folder, {"task": "classification", "labels": ["a", "b"], **manifest},
                       {"w": torch.zeros(2, 3)}, "# card\n")


@pytest.fixture(scope="module")
def fitted(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of `fit` through the CLI, fitted once for this file's tests (each works on a copy)."""
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("fitted") / "model"
    code, output = run_cli("fit", image_folder, "--out", out, "--json", *FAST)
    assert code == 0, output
    return out


def copy_of(bundle: Path, folder: Path) -> Path:
    import shutil

    return Path(shutil.copytree(bundle, folder, symlinks=True))


# -- issue 12 item 2: probe --overwrite trusted any file named transferkit.json ------------------


def test_overwrite_refuses_a_folder_with_a_fake_manifest_through_the_cli(
        cli, image_folder: Path, tmp_path: Path) -> None:
    """Issue 12 item 2: `echo '{}' > P/transferkit.json; P/src/main.py; fit --out P --overwrite` deleted P/src."""
    out = tmp_path / "P"
    (out / "src").mkdir(parents=True)
    (out / MANIFEST).write_text("{}")
    (out / "src" / "main.py").write_text("print('years of work')\n")
    before = tree(out)
    code, output = cli("fit", image_folder, "--out", out, "--overwrite", *FAST)
    assert code != 0
    assert "src" in output and "not a transferkit bundle" in output
    assert tree(out) == before


def test_overwrite_keeps_a_users_file_beside_a_real_bundle_through_the_cli(
        cli, image_folder: Path, fitted: Path, tmp_path: Path) -> None:
    """Issue 12 item 2: a real bundle with the user's notes.txt beside it lost that file on --overwrite."""
    out = copy_of(fitted, tmp_path / "model")
    (out / "notes.txt").write_text("what I tried")
    before = tree(out)
    code, output = cli("fit", image_folder, "--out", out, "--overwrite", "--json", *FAST)
    assert code != 0
    assert "notes.txt" in output and "did not write" in output
    assert tree(out) == before


def test_overwrite_of_a_real_bundle_replaces_it(cli, image_folder: Path, fitted: Path, tmp_path: Path) -> None:
    """Issue 12 item 2: what --overwrite may replace, it replaces, atomically (no temp folder left)."""
    out = copy_of(fitted, tmp_path / "model")
    first = read_manifest(out)
    assert first["files"] == ["README.md", "model.safetensors", "transferkit.json"]
    code, output = cli("fit", image_folder, "--out", out, "--overwrite", "--json", "--seed", "1", *FAST)
    assert code == 0, output
    assert read_manifest(out)["training"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# -- issue 12 item 1: fine-tune --overwrite trusted any run.json ----------------------------------


def _fake_run(folder: Path) -> dict[str, bytes]:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "logs").mkdir()
    (folder / "run.json").write_text("{}")
    (folder / "checkpoints" / "a.ckpt").write_text("w")
    (folder / "logs" / "events.txt").write_text("another tool's log")
    return tree(folder)


def test_finetune_overwrite_refuses_a_folder_with_a_fake_run_json_through_the_cli(cli,
    image_folder: Path, tmp_path: Path
) -> None:
    """Issue 12 item 1: `echo '{}' > X/run.json` + another tool's checkpoints; `fit --strategy finetune
    --out X --overwrite` deleted them and wrote a bundle there."""
    out = tmp_path / "X"
    before = _fake_run(out)
    code, output = cli("fit", image_folder, "--strategy", "finetune", "--epochs", "1", "--out", out,
                       "--overwrite", *FAST)
    assert code != 0 and "not a transferkit bundle" in output
    assert tree(out) == before


def test_start_run_refuses_a_fake_run_json(tmp_path: Path) -> None:
    """Issue 12 item 1: a run folder is one whose run.json carries transferkit's marker, not any run.json."""
    out = tmp_path / "X"
    before = _fake_run(out)
    with pytest.raises(BundleError, match=r"not a transferkit bundle.*checkpoints"):
        start_run(out, overwrite=True)
    assert tree(out) == before
    with pytest.raises(ConfigError, match="not a transferkit run manifest"):
        read_run(out)


def _real_run(folder: Path) -> None:
    write_run(folder, {"status": "running", "n_train": 3})
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    (folder / "checkpoints" / "best.ckpt").write_bytes(b"ckpt")
    (folder / "logs").mkdir()
    (folder / "logs" / "metrics.csv").write_text("epoch,loss\n0,1.0\n")


def test_start_run_over_a_real_run_deletes_only_what_the_run_wrote(tmp_path: Path) -> None:
    """Issue 12 item 1: --overwrite of a genuine run deletes its checkpoints, logs and run.json, nothing else;
    with anything foreign in it, nothing at all."""
    out = tmp_path / "run"
    _real_run(out)
    info = json.loads((out / "run.json").read_text())
    assert info["format"] == "transferkit.run" and info["format_version"] == 1
    assert "checkpoints/last.ckpt" in info["files"]
    assert read_run(out)["n_train"] == 3
    with pytest.raises(BundleError, match="--resume"):
        start_run(out, overwrite=False)

    (out / "checkpoints" / "mine.ckpt").write_bytes(b"the user's own checkpoint")
    before = tree(out)
    with pytest.raises(BundleError, match=r"checkpoints/mine\.ckpt.*did not write"):
        start_run(out, overwrite=True)
    assert tree(out) == before

    (out / "checkpoints" / "mine.ckpt").unlink()
    start_run(out, overwrite=True)
    assert not out.exists() or not any(out.iterdir())


def test_start_run_keeps_the_old_bundle_until_the_new_one_replaces_it(tmp_path: Path) -> None:
    """Issue 12 item 1: a finished run (run files + bundle) started over keeps its bundle until saved over."""
    out = tmp_path / "run"
    tiny_bundle(out)
    _real_run(out)
    start_run(out, overwrite=True)
    assert sorted(tree(out)) == ["README.md", "model.safetensors", "transferkit.json"]
    assert is_bundle(out)


def test_a_run_written_before_the_format_marker_is_still_a_run(tmp_path: Path) -> None:
    """Issue 12 item 1: run.json files of earlier versions (`"kind": "transferkit.run"`) stay resumable."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"kind": "transferkit.run", "n_train": 5}))
    assert read_run(out)["n_train"] == 5
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.ckpt").write_bytes(b"x")
    start_run(out, overwrite=True)
    assert tree(out) == {}


# -- bundles: recognised by marker, old bundles, damaged manifests, full disks --------------------


def test_a_bundle_is_recognised_by_its_marker_not_its_file_name(tmp_path: Path) -> None:
    """Issue 12 item 2: `transferkit.json` without transferkit's format marker is not a bundle."""
    for i, content in enumerate(("{}", "[]", '{"format": "something.else"}', "not json")):
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        (folder / MANIFEST).write_text(content)
        assert not is_bundle(folder)
        with pytest.raises(BundleError, match="not a transferkit bundle"):
            check_writable(folder, overwrite=True)
    assert is_bundle(tiny_bundle(tmp_path / "real"))


def test_a_manifest_that_is_a_json_list_is_a_clear_error(tmp_path: Path) -> None:
    """Issue 12 item 8: a bundle whose transferkit.json is a JSON list raised AttributeError."""
    folder = tiny_bundle(tmp_path / "b")
    (folder / MANIFEST).write_text("[1, 2]")
    with pytest.raises(BundleError, match="JSON list, not a transferkit manifest"):
        read_manifest(folder)
    (folder / MANIFEST).write_text('{"format": "transferkit.bundle", "format_version": "x"}')
    with pytest.raises(BundleError, match="format_version"):
        read_manifest(folder)


def test_an_old_bundle_without_a_file_list_loads_and_is_overwritten_by_known_names(tmp_path: Path) -> None:
    """Issue 12 item 2: bundles saved before the file list existed still load; --overwrite replaces only
    the three names every bundle has and refuses anything else."""
    folder = tiny_bundle(tmp_path / "old")
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["files"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    loaded, tensors = load_bundle(folder)
    assert loaded["labels"] == ["a", "b"] and tensors["w"].shape == (2, 3)

    (folder / "export.onnx").write_bytes(b"not written by this version")
    with pytest.raises(BundleError, match=r"export\.onnx"):
        save_bundle(folder, {"task": "classification", "labels": ["c"]}, {"w": torch.ones(1)}, "#", overwrite=True)
    assert (folder / "export.onnx").read_bytes() == b"not written by this version"
    (folder / "export.onnx").unlink()
    save_bundle(folder, {"task": "classification", "labels": ["c"]}, {"w": torch.ones(1)}, "#", overwrite=True)
    assert read_manifest(folder)["labels"] == ["c"]


def test_a_manifest_cannot_claim_files_outside_the_bundle(tmp_path: Path) -> None:
    """Issue 12 item 2: a planted `files` list naming '../x', '/etc/x' or a pattern claims nothing."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = tiny_bundle(tmp_path / "b")
    (folder / "mine.txt").write_text("keep me too")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] += ["../victim.txt", str(victim), "*", "mine*"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"mine\.txt"):
        check_writable(folder, overwrite=True)
    from transferkit.bundle import remove_owned

    remove_owned(folder)
    assert victim.read_text() == "keep me" and (folder / "mine.txt").read_text() == "keep me too"


def test_a_link_inside_a_bundle_is_foreign(tmp_path: Path) -> None:
    """Issue 12 item 2: a symlink in a bundle folder is not transferkit's; --overwrite refuses it."""
    folder = tiny_bundle(tmp_path / "b")
    outside = tmp_path / "data"
    outside.mkdir()
    (outside / "x.jpg").write_bytes(b"precious")
    (folder / "data").symlink_to(outside)
    with pytest.raises(BundleError, match="'data'"):
        check_writable(folder, overwrite=True)
    assert (outside / "x.jpg").read_bytes() == b"precious"


def test_disk_full_while_saving_leaves_the_old_bundle_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 item 8: disk full while saving over a bundle keeps the old one and says so."""
    folder = tiny_bundle(tmp_path / "b")
    before = tree(folder)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # a full disk surfaces when the written bytes are flushed (the real thing: tests/commands/test_full_disk.py)
    monkeypatch.setattr("transferkit.bundle.os.fsync", full)
    with pytest.raises(BundleError, match=r"disk is full \(the model needs .* free in .*already at .* is intact"):
        save_bundle(folder, {"task": "classification", "labels": ["x"]}, {"w": torch.ones(1)}, "#", overwrite=True)
    assert tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


_SAVER = """
import sys, torch
sys.path.insert(0, {src!r})
from transferkit.bundle import save_bundle
for i in range(100000):
    save_bundle({out!r}, {{"task": "classification", "labels": [str(i), "b"]}},
                {{"w": torch.full((256, 256), float(i))}}, "# card\\n", overwrite=True)
    print(i, flush=True)
"""


@pytest.mark.slow
def test_kill_9_while_saving_over_a_bundle_never_loses_it(tmp_path: Path) -> None:
    """Issue 12 (fault injection): a process saving over a bundle again and again, killed with SIGKILL
    at random points twice (one drawn in each half of 0.2 s after a save: the
    manifest, the weights, the rename; each run is a process start with torch, so no more than that: the
    crash at every file step is the deterministic test below), always leaves a whole bundle that loads (old
    or new, never torn) and nothing but a killed save's temporary folder beside it."""
    import random
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "model"
    tiny_bundle(out)
    code = _SAVER.format(src=str(Path(__file__).parents[1] / "src"), out=str(out))
    rng = random.Random(12)
    kills = 2
    for run in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()  # torch imported, one save done: now die somewhere in the next ones
        time.sleep((run + rng.random()) * 0.2 / kills)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        manifest, tensors = load_bundle(out)
        assert float(tensors["w"][0, 0]) == float(manifest["labels"][0]) or manifest["labels"] == ["a", "b"]
        check_writable(out, overwrite=True)  # nothing foreign in it: the next --overwrite works
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model"]
    assert all(name.startswith(".model.") for name in leftovers)  # at most a killed save's temp folder
    save_bundle(out, {"task": "classification", "labels": ["z"]}, {"w": torch.ones(1)}, "#", overwrite=True)
    assert read_manifest(out)["labels"] == ["z"]


class _Killed(BaseException):
    """A crash at a chosen step (BaseException: the save's `except OSError` cannot swallow it)."""


def test_a_crash_at_any_file_step_of_a_save_leaves_the_old_or_the_new_bundle_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic beside the kill -9 test: the save over a bundle is crashed at each of its file
    system steps in turn (the k-th rename, exchange, unlink, rmdir, copy or tree removal raises), and
    after every crash the folder holds exactly the old bundle or exactly the new one, file for file.
    A save that deleted the old files before the new ones were in place fails here at its second step."""
    import os
    import shutil

    import transferkit.bundle as bundle_module

    new_manifest = {"task": "classification", "labels": ["new", "b"]}
    new_weights = {"w": torch.ones(2, 3)}
    ref = save_bundle(tmp_path / "ref", new_manifest, new_weights, "# new\n")
    new_tree = tree(ref)
    steps = {"count": 0, "crash_at": -1}

    def crashing(function):  # type: ignore[no-untyped-def]
        def step(*args, **kwargs):  # type: ignore[no-untyped-def]
            steps["count"] += 1
            if steps["count"] == steps["crash_at"]:
                raise _Killed
            return function(*args, **kwargs)
        return step

    for module, names in ((os, ("replace", "rename", "unlink", "remove", "rmdir")),
                          (shutil, ("copy", "copy2", "copyfile", "move", "rmtree"))):
        for name in names:
            monkeypatch.setattr(module, name, crashing(getattr(module, name)))
    monkeypatch.setattr(bundle_module, "_exchange", crashing(bundle_module._exchange))

    crashes = 0
    for crash_at in range(1, 40):
        out = tmp_path / f"model{crash_at}"
        tiny_bundle(out)
        old_tree = tree(out)
        steps.update(count=0, crash_at=crash_at)
        try:
            save_bundle(out, new_manifest, new_weights, "# new\n", overwrite=True)
        except _Killed:
            crashes += 1
            assert tree(out) in (old_tree, new_tree), f"torn bundle after a crash at step {crash_at}"
            load_bundle(out)
            continue
        assert tree(out) == new_tree
        break
    else:
        raise AssertionError("the save never finished within 40 steps")
    assert crashes >= 2  # the save has steps to crash in: the test is not vacuous


def test_saving_through_a_link_to_a_bundle_keeps_the_link(tmp_path: Path) -> None:
    """Issue 12 item 2: `--out LINK` (a link to a bundle folder) replaces the bundle where the link
    points; the user's link stays a link."""
    real = tiny_bundle(tmp_path / "store" / "model")
    link = tmp_path / "latest"
    link.symlink_to(real)
    save_bundle(link, {"task": "classification", "labels": ["new"]}, {"w": torch.ones(1)}, "#", overwrite=True)
    assert link.is_symlink() and read_manifest(link)["labels"] == ["new"]
    assert read_manifest(real)["labels"] == ["new"]
