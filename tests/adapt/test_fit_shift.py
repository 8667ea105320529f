"""`fit --adapt-to`: the shift diagnostic in the summary, the bundle and the report (probe), and
fine-tuning with the target (MCC + AdaBN) through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # each test fits (a random-init network on 30 images): a minute on 2 shared cores

FAST = ["--backbone", "test_efficientnet", "--weights", "random", "--precision", "fp32", "--augment", "0"]


@pytest.fixture(scope="module")
def target(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training images washed out and tinted (a colour/contrast shift), flat, without labels."""
    root = tmp_path_factory.mktemp("shift-target") / "target"
    root.mkdir()
    for i, p in enumerate(sorted(image_folder.rglob("*.jpg"))):
        x = np.asarray(Image.open(p), np.float64)
        Image.fromarray(np.clip((x - 128) * 0.4 + 150 + np.array([30, 0, -30]), 0, 255).astype(np.uint8)).save(
            root / f"{i:03d}.png")
    return root


def test_probe_fit_shows_and_keeps_the_shift_diagnostic(cli, image_folder: Path, target: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    code, output = cli("fit", image_folder, *FAST, "--adapt-to", target, "--out", out, "--no-cache", "--report")
    assert code == 0, output
    assert "how far is the target?" in output and "proxy A-distance" in output and "verdict:" in output
    shift = json.loads((out / "transferkit.json").read_text())["adaptation"]["shift"]
    assert shift["domain_accuracy"] > 0.8 and shift["domain_accuracy_aligned"] is not None
    assert shift["alignment"] == "standardize (shrunk)" and len(shift["map"]["panels"]) == 2  # auto
    html = (out / "report.html").read_text()
    assert '<section id="target-shift">' in html and 'id="plot-shift"' in html
    code, output = cli("fit", image_folder, *FAST, "--adapt-to", target, "--out", out, "--no-cache", "--overwrite",
                       "--json")
    summary = json.loads(output[output.index("{"):])
    assert "map" not in summary["adaptation"]["shift"] and summary["adaptation"]["shift"]["verdict"]


def test_finetune_with_a_target_through_the_cli(cli, image_folder: Path, target: Path, tmp_path: Path) -> None:
    """AdaBN asked for through `--config` (it is off by default). (Resume with a target:
    tests/finetune/test_target.py, at the estimator's level.)"""
    out = tmp_path / "ft"
    config = tmp_path / "adabn.yaml"
    config.write_text("adabn: true\n")
    args = [image_folder, *FAST[:-2], "--strategy", "finetune", "--epochs", "2", "--batch-size", "8",
            "--adapt-to", target, "--no-cache", "--config", config]
    code, output = cli("fit", *args, "--out", out)
    assert code == 0, output
    assert "Minimum Class Confusion" in output and "AdaBN" in output and "adapted to" in output
    assert "how far is the target?" in output and "after fine-tuning with the target + AdaBN" in output
    target_record = json.loads((out / "transferkit.json").read_text())["finetune"]["target"]
    assert target_record["n_target"] == 30 and sorted(target_record["mcc_by_epoch"]) == ["1", "2"]
    assert target_record["adabn"]["layers"] > 0
    assert json.loads((out / "run.json").read_text())["n_target"] == 30  # what --resume checks
