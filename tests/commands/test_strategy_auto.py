"""`--strategy auto` on enough data to fine-tune: the estimate comes from training steps timed here,
it is shown beside the time fine-tuning took, and the probe LP-FT starts from is kept when it
validates better (fine-tuning has to earn its place)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import make_image_folder
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def enough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 classes × 100: past the small-data rule (≥ 20 per class and ≥ 200 training examples)
    return make_image_folder(tmp_path_factory.mktemp("enough") / "data", n_per_class=100, size=(24, 24))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for this file's fits of `enough` (the same 300 images, the same network): the
    features, the exported graph and the engine chosen for it are made once, not once per test."""
    return tmp_path_factory.mktemp("cache")


def _fit(args: list[str]) -> dict:
    from transferkit.commands import app

    result = CliRunner().invoke(app, ["fit", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.mark.slow  # above ~10 s on a quiet 2-core machine: its file is handed out first
def test_auto_measures_its_rate_times_itself_and_keeps_the_better(enough: Path, cache: Path, tmp_path: Path) -> None:
    summary = _fit([str(enough), "--backbone", "test_efficientnet", "--weights", "random", "--strategy", "auto",
                    "--epochs", "1", "--budget", "60", "--out", str(tmp_path / "run"), "--cache-dir", str(cache)])
    decision = summary["strategy_decision"]
    assert decision["strategy"] == "finetune" and decision["measured_rate"] > 0
    assert "measured here" in decision["reason"]
    assert decision["estimated_minutes"] > 0 and decision["actual_minutes"] > 0
    compared = decision["compared"]  # the default probe against the fine-tuned network, on validation
    assert compared["n_val"] > 0 and decision["probe_minutes"] > 0
    assert compared["kept"] == ("finetuned" if compared["val_accuracy_finetuned"] > compared["val_accuracy_probe"]
                                else "probe")
    manifest = json.loads((tmp_path / "run" / "transferkit.json").read_text())
    assert manifest["strategy_decision"]["compared"] == compared and manifest["strategy_decision"]["actual_minutes"] > 0
    assert manifest["estimator"] == ("finetuned" if compared["kept"] == "finetuned" else "probe")
    from transferkit import load

    load(tmp_path / "run").predict([str(next(enough.rglob("*.jpg")))])  # whichever was kept, it predicts
    # what each minute bought: the probe head LP-FT starts from (epoch 0), then each epoch, timed
    timeline = manifest["strategy_decision"]["timeline"]
    assert [row[0] for row in timeline] == [0, 1] and 0 <= timeline[0][1] <= timeline[1][1]
    assert all(0 <= row[2] <= 1 for row in timeline)
    from transferkit.report import report_run

    html = report_run(tmp_path / "run").read_text(encoding="utf-8")
    assert 'id="plot-minutes"' in html and f"auto kept the {compared['kept']}" in html


def test_keep_better_puts_the_probe_back_when_it_validates_higher(enough: Path, cache: Path) -> None:
    """A learning rate that wrecks the network: the probe it started from must come back."""
    import numpy as np
    import torch

    from transferkit.data import load_dataset
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig

    data = load_dataset(enough)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.items))
    train, val = order[:240], order[240:]
    items, labels = list(data.items), list(data.labels)
    clf = FinetunedClassifier(backbone="test_efficientnet", weights="random", progress=False, cache_dir=cache,
                              training=FinetuneConfig(epochs=1, lr=50.0, keep="better", augment=False))
    clf.fit([items[i] for i in train], [labels[i] for i in train], X_val=[items[i] for i in val],
            y_val=[labels[i] for i in val])
    kept = clf.fit_report_.kept
    assert kept["kept"] == "probe" and kept["val_accuracy_probe"] > kept["val_accuracy_finetuned"]
    # the probe's figure is from before its refit on train + val, never the refit one scored on val
    assert kept["val_accuracy_probe"] == clf.fit_report_.head_choice["val_accuracy"]
    # the network is back where fine-tuning started: the backbone's weights as they were
    from transferkit.backbones import create_backbone

    start = create_backbone("test_efficientnet", weights="random", seed=clf.seed).state_dict()
    now = clf.model_.backbone.state_dict()
    assert all(torch.equal(start[k], now[k]) for k in start)
    assert np.isfinite(clf.predict_proba([items[i] for i in val[:4]])).all()


def test_a_concatenation_is_not_fine_tuned(enough: Path, cache: Path, tmp_path: Path) -> None:
    # a tiny random-init network in the concatenation: the rule is about the concatenation, not the network
    summary = _fit([str(enough), "--backbone", "test_efficientnet@random+hog", "--strategy", "auto",
                    "--out", str(tmp_path / "run"), "--cache-dir", str(cache)])
    assert summary["strategy_decision"]["strategy"] == "probe" and "head_choice" in json.dumps(summary)
    # why: the concatenation itself refuses to be trained (not some other error on the way)
    decision = summary["strategy_decision"]
    assert decision["rule"].startswith("cannot be fine-tuned")
    assert "'test_efficientnet+hog' is a concatenation of frozen feature extractors" in decision["reason"], decision
