"""Issue 12's pipeline cases: each reproduces what used to lose data or answer wrongly, and checks
the clear error (exit 2, no traceback) or the safe behaviour that replaced it."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from transferkit.errors import BundleError

FAST = ["--backbone", "test_efficientnet", "--weights", "random"]


@pytest.fixture(scope="module")
def text_bundle(cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text")
    sport, cooking = ("football", "match", "goal", "team", "score"), ("oven", "bread", "soup", "flour", "bake")
    rows = [f"{a} {b} {c},sport" for a in sport for b in sport for c in sport[:2] if a != b]
    rows += [f"{a} {b} {c},cooking" for a in cooking for b in cooking for c in cooking[:2] if a != b]
    (root / "texts.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    code, output = cli("fit", root / "texts.csv", "--text-column", "text", "--backbone", "tfidf", "--out",
                       root / "model", "--json", "--test", "0.2")
    assert code == 0, output
    return root / "model"


def test_item4_a_photo_is_never_read_as_text(cli, text_bundle: Path, image_folder: Path) -> None:
    photo = image_folder / "red" / "000.jpg"
    code, message = cli("predict", text_bundle, photo)
    assert code == 2 and "000.jpg" in message and "image file" in message and "text model" in message
    code, output = cli("predict", text_bundle, "a goal for the football team", "--json")
    assert code == 0 and json.loads(output)[0]["label"] == "sport"


def test_item8_a_bundle_whose_labels_do_not_fit_its_weights_is_refused(cli, text_bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(text_bundle, broken)
    manifest = json.loads((broken / "transferkit.json").read_text())
    manifest["labels"].append("politics")
    (broken / "transferkit.json").write_text(json.dumps(manifest))
    code, message = cli("predict", broken, "the goal")
    assert code == 2 and "3 labels" in message and "2 classes" in message


def test_item8_a_damaged_checkpoint_on_resume_is_refused_safely(cli, image_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output = cli("fit", image_folder, "--strategy", "finetune", "--epochs", "1", *FAST, "--out", run, "--json")
    assert code == 0, output
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])  # truncated, as a crash mid-copy leaves it
    code, message = cli("fit", image_folder, "--resume", run)
    assert code == 2 and "last.ckpt" in message and "weights_only=False" not in message


def test_item8_disk_full_on_save_keeps_the_old_bundle(cli, image_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m"
    code, output = cli("fit", image_folder, *FAST, "--out", out, "--json")
    assert code == 0, output
    before = (out / "model.safetensors").read_bytes()

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # a full disk surfaces when the written bytes are flushed (the bundle's bytes are written by Python)
    monkeypatch.setattr("transferkit.bundle.os.fsync", full)
    code, message = cli("fit", image_folder, *FAST, "--out", out, "--overwrite", "--seed", "1", "--no-cache")
    assert code == 2 and "space" in message.lower()
    assert (out / "model.safetensors").read_bytes() == before
    monkeypatch.undo()
    from transferkit import load

    assert len(load(out, progress=False).classes_) == 3


def test_item10_a_renamed_random_init_backbone_is_detected(cli, image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    code, output = cli("fit", image_folder, "--backbone", "resnet10t", "--weights", "random", "--out", out, "--json")
    assert code == 0, output
    manifest = json.loads((out / "transferkit.json").read_text())
    manifest["backbone"]["name"] = "resnet14t"  # same random seed, another network
    (out / "transferkit.json").write_text(json.dumps(manifest))
    from transferkit import load

    with pytest.raises(BundleError, match="weights"):
        load(out, progress=False)


def test_item10_evaluate_with_nothing_readable_fails(
        cli, text_bundle: Path, image_folder: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "img"
    code, output = cli("fit", image_folder, *FAST, "--out", bundle, "--json")
    assert code == 0, output
    junk = tmp_path / "junk"
    for cls in ("red", "blue"):
        (junk / cls).mkdir(parents=True)
        for i in range(2):
            (junk / cls / f"{i}.jpg").write_bytes(b"not a jpeg at all")
    code, message = cli("evaluate", bundle, junk, "--json")
    assert code == 2 and ("could be read" in message or "unreadable" in message)
