"""TransferClassifier end to end on a tiny generated dataset: fit, predict, save/load, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from transferkit import TransferClassifier
from transferkit.data import load_dataset
from transferkit.errors import BundleError, ConfigError, DataError, NotFittedError


@pytest.fixture(scope="module")
def fitted(image_folder, tmp_path_factory):
    data = load_dataset(image_folder)
    clf = TransferClassifier(progress=False, cache_dir=tmp_path_factory.mktemp("cache"))
    return clf.fit(data.items, data.labels), data


def test_learns_the_colours(fitted) -> None:
    clf, data = fitted
    assert list(clf.classes_) == ["blue", "green", "red"]
    assert clf.score(data.items, data.labels) > 0.9
    proba = clf.predict_proba(data.items[:4])
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_bundle_round_trip_gives_the_same_probabilities(fitted, tmp_path) -> None:
    clf, data = fitted
    out = clf.save(tmp_path / "model")
    assert {p.name for p in out.iterdir()} == {"transferkit.json", "model.safetensors", "README.md"}
    manifest = json.loads((out / "transferkit.json").read_text())
    assert manifest["backbone"]["name"] == "efficientnet_lite0"
    assert len(manifest["backbone"]["weights_id"]) == 64
    assert manifest["labels"] == ["blue", "green", "red"]
    assert manifest["backbone"]["preprocess"]["input_size"] == 224
    loaded = TransferClassifier.load(out, progress=False)
    np.testing.assert_allclose(loaded.predict_proba(data.items[:6]), clf.predict_proba(data.items[:6]), atol=1e-6)


def test_no_pickle_in_a_bundle(fitted, tmp_path) -> None:
    """Every file of a bundle is JSON, Markdown or safetensors (a JSON header + raw tensor bytes)."""
    from safetensors import safe_open

    clf, _ = fitted
    out = clf.save(tmp_path / "model")
    json.loads((out / "transferkit.json").read_text(encoding="utf-8"))
    (out / "README.md").read_text(encoding="utf-8")
    raw = (out / "model.safetensors").read_bytes()
    header = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + header])
    sizes = sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in meta.items() if k != "__metadata__")
    assert 8 + header + sizes == len(raw)  # nothing but the declared tensors
    with safe_open(str(out / "model.safetensors"), framework="pt") as fh:
        assert set(fh.keys()) == {k for k in meta if k != "__metadata__"}


def test_bundle_with_other_weights_is_refused(fitted, tmp_path) -> None:
    clf, _ = fitted
    out = clf.save(tmp_path / "model")
    manifest = json.loads((out / "transferkit.json").read_text())
    manifest["backbone"]["weights_id"] = "0" * 64
    (out / "transferkit.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="weights"):
        TransferClassifier.load(out)


def test_out_folder_that_is_not_a_bundle_is_not_overwritten(fitted, tmp_path) -> None:
    clf, _ = fitted
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(BundleError, match="not a transferkit bundle"):
        clf.save(precious)
    assert (precious / "chapter1.tex").read_text() == "years of work"


def test_existing_bundle_needs_overwrite(fitted, tmp_path) -> None:
    clf, _ = fitted
    clf.save(tmp_path / "model")
    with pytest.raises(BundleError, match="--overwrite"):
        clf.save(tmp_path / "model")
    clf.save(tmp_path / "model", overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_load_of_a_non_bundle_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BundleError, match="not a transferkit bundle"):
        TransferClassifier.load(tmp_path)


def test_use_before_fit_says_what_to_call() -> None:
    with pytest.raises(NotFittedError, match=r"TransferClassifier.fit"):
        TransferClassifier().predict(["x.jpg"])


def test_invalid_parameters_are_checked_in_fit(image_folder) -> None:
    clf = TransferClassifier(precision="fp64")  # stored unchanged…
    assert clf.precision == "fp64"
    with pytest.raises(ConfigError, match="precision"):  # …validated in fit
        clf.fit([str(image_folder / "red" / "000.jpg")] * 4, ["a", "a", "b", "b"])


def test_skips_corrupt_files_and_counts_them(image_folder, tmp_path) -> None:
    root = tmp_path / "data"
    shutil.copytree(image_folder, root)
    (root / "red" / "zero.jpg").write_bytes(b"")
    (root / "green" / "text.png").write_text("I am not a picture")
    good = (root / "blue" / "000.jpg").read_bytes()
    (root / "blue" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    data = load_dataset(root)
    clf = TransferClassifier(progress=False).fit(data.items, data.labels)
    skipped = clf.fit_report_.skipped
    assert len(skipped) == 3
    assert any("zero.jpg" in k for k in skipped) and any("truncated.jpg" in k for k in skipped)
    with pytest.raises(DataError, match="could not be read"):
        TransferClassifier(progress=False, strict=True).fit(data.items, data.labels)


def test_all_files_bad_is_a_clear_error(tmp_path) -> None:
    items = []
    for i in range(4):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(b"junk")
        items.append(str(p))
    with pytest.raises(DataError, match="none of the 4 inputs could be read"):
        TransferClassifier(progress=False).fit(items, ["a", "a", "b", "b"])


def test_single_class_and_tiny_class_are_refused(image_folder) -> None:
    red = [str(p) for p in sorted((image_folder / "red").iterdir())]
    with pytest.raises(DataError, match="only one class"):
        TransferClassifier(progress=False).fit(red[:4], ["red"] * 4)
    with pytest.raises(DataError, match="at least 2 examples"):
        TransferClassifier(progress=False).fit(red[:4], ["a", "a", "a", "b"])


def test_same_seed_same_result(image_folder) -> None:
    data = load_dataset(image_folder)
    a = TransferClassifier(progress=False, head="mlp:16", seed=1).fit(data.items, data.labels)
    b = TransferClassifier(progress=False, head="mlp:16", seed=1).fit(data.items, data.labels)
    np.testing.assert_array_equal(a.predict_proba(data.items[:5]), b.predict_proba(data.items[:5]))


def test_transferkit_load_dispatches_on_the_bundle(fitted, tmp_path) -> None:
    import transferkit

    clf, data = fitted
    out = clf.save(tmp_path / "model")
    loaded = transferkit.load(out)
    assert isinstance(loaded, TransferClassifier)
    assert list(loaded.predict(data.items[:2])) == list(clf.predict(data.items[:2]))


def test_the_engine_kept_for_the_next_extraction_is_let_go_before_the_head_trains(image_folder, tmp_path,
                                                                                   monkeypatch) -> None:
    """Extraction keeps its graph engine for the next call of the same graph (a compiled model: ~180 MB for
    MiniLM); a fit lets it go before its head trains, where a text fit's memory would otherwise peak."""
    import transferkit.estimators.probe as probe
    from transferkit.engines import run

    seen: list[tuple[str, int]] = []
    real_release, real_train = probe.release_engines, probe.train_probe

    def release_engines() -> None:
        seen.append(("kept before the head", len(run._KEPT)))
        real_release()

    def train_probe(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(("kept while the head trains", len(run._KEPT)))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(probe, "release_engines", release_engines)
    monkeypatch.setattr(probe, "train_probe", train_probe)
    data = load_dataset(image_folder)
    TransferClassifier(backbone="test_efficientnet", weights="random", engine="onnxruntime", precision="fp32",
                       progress=False, cache_dir=tmp_path).fit(data.items, data.labels)
    assert seen[:2] == [("kept before the head", 1), ("kept while the head trains", 0)], seen


def test_the_backbone_is_let_go_while_the_head_trains_and_loaded_again_after(image_folder, tmp_path,
                                                                             monkeypatch) -> None:
    """With nothing to extract after the head (no views, no target), the fit lets its backbone go while the head
    trains (MiniLM's memory-mapped weights: 87 MB of a text fit's peak) and loads it again after: the same
    weights, computing the same features; with views to extract it keeps it."""
    import gc
    import weakref

    import torch

    import transferkit.estimators.probe as probe

    data = load_dataset(image_folder)
    seen: dict[str, object] = {}
    real_release, real_train = probe.release_engines, probe.train_probe

    def release_engines() -> None:
        if "ref" in seen:
            return real_release()
        backbone = clf.backbone_
        seen["ref"] = weakref.ref(backbone)
        seen["batch"] = batch = backbone.collate([backbone.load(item) for item in data.items[:3]])
        with torch.no_grad():
            seen["features"] = backbone.forward_features(batch)
        real_release()

    def train_probe(*args, **kwargs):  # type: ignore[no-untyped-def]
        ref = seen["ref"]
        assert isinstance(ref, weakref.ref)
        seen["alive while the head trains"] = ref() is not None or hasattr(clf, "backbone_")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(probe, "release_engines", release_engines)
    monkeypatch.setattr(probe, "train_probe", train_probe)
    clf = TransferClassifier(backbone="test_efficientnet", weights="random", engine="torch", progress=False,
                             cache_dir=tmp_path)
    gc.disable()  # freed when let go, not by a collection
    try:
        clf.fit(data.items, data.labels)
    finally:
        gc.enable()
    assert seen["alive while the head trains"] is False
    with torch.no_grad():
        assert torch.equal(clf.backbone_.forward_features(seen["batch"]), seen["features"])
    assert clf.predict(data.items[:4]).shape == (4,)
    clf.set_params(augment=1).fit(data.items, data.labels)  # views extracted after the head's first fit
    assert seen["alive while the head trains"] is True
