"""`fit --adapt-to`: the alignment travels with the model (bundle, predict, evaluate, export, serve),
the target's labels never reach training, and a bad TARGET is a clear error that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # each test fits a probe (a random-init network on 30 images): seconds to a minute

FAST = ["--backbone", "test_efficientnet", "--weights", "random", "--precision", "fp32", "--augment", "0"]


@pytest.fixture(scope="module")
def target(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training images made paler (a class-independent shift), in a nested layout without labels."""
    root = tmp_path_factory.mktemp("target") / "target"
    for i, p in enumerate(sorted(image_folder.rglob("*.jpg"))):
        pixels = (np.asarray(Image.open(p), np.float64) * 0.5 + 100).clip(0, 255).astype(np.uint8)
        out = root / f"batch{i % 3}" / f"{i:03d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(out)
    return root


@pytest.fixture(scope="module")
def adapted(cli, image_folder: Path, target: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "adapted"
    code, output = cli("fit", image_folder, *FAST, "--adapt-to", target, "--adapt-method", "coral", "--out", out,
                       "--no-cache")
    assert code == 0, output
    assert "adapted to" in output and "coral" in output
    return out


def test_bundle_carries_the_alignment_through_predict_export_and_serve(cli, adapted: Path, target: Path) -> None:
    import transferkit
    from transferkit.estimators.onnx_export import export_model

    tensors = load_file(str(adapted / "model.safetensors"))
    assert tensors["align.weight"].shape == (tensors["align.mean_in"].shape[0],) * 2
    manifest = json.loads((adapted / "transferkit.json").read_text())
    assert manifest["adaptation"]["applied"] == "coral" and manifest["adapt_target"]["target_inputs"] == 30
    # what the adaptation cost, each part timed: the alignment and the shift diagnostic (no views here
    # (--augment 0), so no DEV choice of them to time)
    assert all(manifest["adaptation"][k] >= 0 for k in ("seconds", "shift_seconds"))
    assert "views_seconds" not in manifest["adaptation"]

    model = transferkit.load(adapted, cache_dir=False, progress=False)
    files = sorted(str(p) for p in target.rglob("*.png"))[:9]
    values = model.features(files).values
    with_alignment = model.predict_proba(files)
    without = model.head_  # the same head, the alignment left out, reads these features differently
    import torch

    plain = torch.softmax(without(torch.from_numpy(values)), 1).detach().numpy()
    assert not np.allclose(with_alignment, plain, atol=1e-3)

    report = export_model(adapted, samples=files, overwrite=True)
    assert report.max_difference <= 1e-4  # parity with the alignment inside the graph

    code, output = cli("predict", adapted, *files, "--json", "--no-cache", "--engine", "torch")
    assert code == 0, output
    rows = json.loads(output[output.index("["):])
    assert [r["label"] for r in rows] == list(model.classes_[with_alignment.argmax(1)])

    from fastapi.testclient import TestClient

    from transferkit.serve import ServeOptions, create_app

    server = TestClient(create_app(model, ServeOptions(max_batch=8, batch_window_ms=5), name="adapted"))
    with server:
        got = server.post("/predict", content=Path(files[0]).read_bytes(), headers={"Content-Type": "image/png"})
    assert got.status_code == 200, got.text
    assert got.json()["predictions"][0]["probability"] == pytest.approx(float(with_alignment[0].max()), abs=1e-5)


def test_target_labels_never_reach_training(cli, image_folder: Path, target: Path, tmp_path: Path) -> None:
    """The same target inputs, unlabelled (a folder) or labelled all one class (a table): the same model."""
    files = sorted(target.rglob("*.png"))
    table = tmp_path / "target.csv"
    table.write_text("path,label\n" + "".join(f"{f},red\n" for f in files))
    heads = []
    for name, given in (("folder", target), ("table", table)):
        code, output = cli("fit", image_folder, *FAST, "--adapt-to", given, "--out", tmp_path / name, "--no-cache")
        assert code == 0, output
        heads.append(load_file(str(tmp_path / name / "model.safetensors")))
    assert "ignored (column 'label')" in (tmp_path / "table" / "transferkit.json").read_text()
    assert heads[0].keys() == heads[1].keys()
    for key in heads[0]:
        assert np.array_equal(heads[0][key].numpy(), heads[1][key].numpy()), key


@pytest.mark.parametrize("case", ["empty", "unreadable", "other-modality", "missing"])
def test_bad_target_is_an_error_and_nothing_is_written(cli, image_folder: Path, tmp_path: Path, case: str) -> None:
    given = tmp_path / "target"
    if case != "missing":
        given.mkdir()
    if case == "unreadable":
        (given / "a.png").write_bytes(b"not a png")
    if case == "other-modality":
        (given / "a.wav").write_bytes(b"RIFF....WAVE")
    code, output = cli("fit", image_folder, *FAST, "--adapt-to", given, "--out", tmp_path / "run", "--no-cache")
    assert code != 0
    assert str(given) in output
    assert not (tmp_path / "run").exists()


def test_adapt_batch_is_refused_below_its_minimum_and_works_above(cli, adapted: Path, image_folder: Path,
                                                                  target: Path) -> None:
    files = sorted(str(p) for p in target.rglob("*.png"))
    code, output = cli("predict", adapted, *files[:5], "--adapt-batch", "--no-cache")
    assert code != 0 and "at least 32" in output
    table = target.parent / "labelled.csv"  # 60 labelled inputs: the training images, twice
    table.write_text("path,label\n" + "".join(f"{p},{p.parent.name}\n" for p in
                                              sorted(image_folder.rglob("*.jpg")) * 2))
    code, output = cli("evaluate", adapted, table, "--adapt-batch", "--json", "--no-cache")
    assert code == 0, output
    assert json.loads(output[output.index("{"):])["n"] == 60


def test_adapt_method_without_target_is_refused(cli, image_folder: Path, tmp_path: Path) -> None:
    code, output = cli("fit", image_folder, *FAST, "--adapt-method", "coral", "--out", tmp_path / "run")
    assert code != 0 and "--adapt-to" in output


def test_auto_aligns_only_a_target_that_differs(cli, image_folder: Path, target: Path, tmp_path: Path) -> None:
    """auto shrinks the shift toward none by James-Stein: the training images themselves as TARGET (no
    shift) leave the model unaligned; the paler copies (a strong shift) are standardised (almost) fully."""
    same = tmp_path / "same"
    for i, p in enumerate(sorted(image_folder.rglob("*.jpg"))):
        (same / f"b{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.open(p).save(same / f"b{i % 2}" / f"{i:03d}.png")
    applied = {}
    for name, folder in (("same", same), ("paler", target)):
        out = tmp_path / "runs" / name
        code, output = cli("fit", image_folder, *FAST, "--adapt-to", folder, "--out", out, "--no-cache")
        assert code == 0, output
        adaptation = json.loads((out / "transferkit.json").read_text())["adaptation"]
        applied[name] = (adaptation["applied"], adaptation["mean_shrinkage"])
    assert applied["same"] == ("none", 0.0), applied
    assert applied["paler"][0] == "standardize (shrunk)" and applied["paler"][1] > 0.9, applied


def test_mcc_fine_tunes_the_head_and_the_bundle_carries_it(cli, image_folder: Path, target: Path,
                                                           tmp_path: Path) -> None:
    """--adapt-method mcc: James-Stein's map kept and the head changed (a plain fit's head differs), and
    predict reads the saved model (map and head) as the fitted one."""
    heads = {}
    for method in ("mcc", "none"):
        out = tmp_path / method
        code, output = cli("fit", image_folder, *FAST, "--adapt-to", target, "--adapt-method", method, "--out", out,
                           "--no-cache")
        assert code == 0, output
        heads[method] = load_file(out / "model.safetensors")
    record = json.loads((tmp_path / "mcc" / "transferkit.json").read_text())["adaptation"]
    assert record["applied"] == "mcc" and record["alignment"] == "standardize (shrunk)", record
    assert any(k.startswith("align.") for k in heads["mcc"]) and not any(k.startswith("align.") for k in heads["none"])
    head = [k for k in heads["mcc"] if k.startswith("head") and k.endswith("weight")]
    assert head, sorted(heads["mcc"])
    assert not np.allclose(heads["mcc"][head[-1]].numpy(), heads["none"][head[-1]].numpy())
    files = sorted(str(p) for p in target.rglob("*.png"))[:4]
    code, output = cli("predict", tmp_path / "mcc", *files, "--json", "--no-cache", "--engine", "torch")
    assert code == 0, output
    assert len(json.loads(output[output.index("["):])) == 4


@pytest.mark.parametrize("rule", ["information", "latent forced"])
def test_auto_weighs_the_targets_latent_domains_and_the_bundle_carries_them(cli, image_folder: Path, tmp_path: Path,
                                                                           monkeypatch, rule: str) -> None:
    """A target of two domains (the training images made paler, and darker), each shifted its own way: auto
    detects the shift, weighs the target's latent domains each aligned against one alignment for the whole
    target by the head's information on the target (kept on a significant gain), and says so; the kept
    alignment travels through the bundle, predict and the exported graph. (This random-init network's
    features cluster by colour, not by domain, and the rule keeps one alignment; `latent forced` makes the
    rule prefer the latent domains, to carry them through the bundle.)"""
    import transferkit
    from transferkit.adapt import latent as latent_module
    from transferkit.estimators.onnx_export import export_model

    if rule == "latent forced":
        def rigged(latent: np.ndarray, whole: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
            return 1.0, 0.5  # a significant gain, whatever the predictions

        monkeypatch.setattr(latent_module, "information_gain", rigged)

    target = tmp_path / "two"
    files = sorted(image_folder.rglob("*.jpg"))
    for copy in range(2):  # 60 inputs: two domains of 30
        for i, p in enumerate(files):
            pixels = np.asarray(Image.open(p), np.float64)
            pixels = pixels * 0.5 + 120 if i % 2 else pixels * 0.4
            out = target / f"{'pale' if i % 2 else 'dark'}{copy}" / f"{i:03d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(pixels + copy, 0, 255).astype(np.uint8)).save(out)
    out = tmp_path / "run"
    code, output = cli("fit", image_folder, *FAST, "--adapt-to", target, "--out", out, "--no-cache")
    assert code == 0, output
    adaptation = json.loads((out / "transferkit.json").read_text())["adaptation"]
    latent = adaptation["latent_domains"]
    assert latent["domains"] >= 2 and "information maximization" in latent["why"] and latent["why"] in output
    assert latent["kept"] == (latent["information_gain_lower"] > 0)
    if rule == "information":  # a kept gain is one above its bootstrap's noise, so above the point estimates too
        assert not latent["kept"] or latent["information_latent"] > latent["information_whole"]
    assert latent["kept"] == (rule == "latent forced")
    tensors = load_file(str(out / "model.safetensors"))
    assert ("align.centroids" in tensors) == latent["kept"]
    assert adaptation["applied"] == ("latent domains" if latent["kept"] else "standardize (shrunk)")
    model = transferkit.load(out, cache_dir=False, progress=False)
    samples = sorted(str(p) for p in target.rglob("*.png"))[::6]
    report = export_model(out, samples=samples, overwrite=True)
    assert report.max_difference <= 1e-4  # parity with the kept alignment inside the graph
    import torch

    values = torch.from_numpy(model.features(samples).values)
    expected = torch.softmax(model.head_(model.align_(values)), 1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(samples), expected, atol=1e-5)
