"""Heads and YAML configs through the CLI, end to end: fit, predict, evaluate, and what `--resume` refuses
(the head's network and where a bad head spec fails: `test_model.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from transferkit.commands import app
from transferkit.errors import ConfigError, TransferkitError
from transferkit.options import read_yaml as read_yaml_options


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def test_cli_finetune_with_yaml_then_predict_evaluate_and_resume_checks(images: Path, tmp_path: Path) -> None:
    config = tmp_path / "ft.yaml"
    config.write_text(
        "strategy: finetune\nbackbone: test_efficientnet\nweights: random\ninput_size: 32\nepochs: 1\n"
        "batch_size: 8\nprecision: fp32\nlr: auto\nlr_find_steps: 20\nnum_workers: 0\naugment: false\n"
        "head: 'dense:16:relu, dropout:0.1, dense:N'\nfreeze: full\n"
    )
    out = tmp_path / "run"
    result = _cli("fit", str(images), "--config", str(config), "--out", str(out), "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["epochs_run"] == 2  # the flag beat the YAML
    assert summary["lr_found"] and summary["lr"] > 0
    manifest = json.loads((out / "transferkit.json").read_text())
    assert manifest["strategy"] == "finetune" and manifest["finetune"]["lr_found"]
    assert manifest["backbone"]["weights_id"] == "random-init:0:test_efficientnet"
    pred = _cli("predict", str(out), str(images / "red"), "--json")
    assert pred.exit_code == 0, pred.output
    rows = json.loads(pred.output[pred.output.index("[") :])
    assert len(rows) == 8 and all(r["label"] in ("red", "green", "blue") for r in rows)
    ev = _cli("evaluate", str(out), str(images), "--json")
    assert ev.exit_code == 0 and json.loads(ev.output[ev.output.index("{") :])["n"] == 24

    # --resume: refused on a folder that is not a run, on other data, on another backbone
    with pytest.raises(TransferkitError, match="not a transferkit fine-tuning run"):
        _raise(_cli("fit", str(images), "--resume", str(images)))
    other = tmp_path / "other"
    for name in ("red", "blue"):
        (other / name).mkdir(parents=True)
        for f in sorted((images / name).iterdir())[:3]:
            (other / name / f.name).write_bytes(f.read_bytes())
    with pytest.raises(TransferkitError, match="other data"):
        _raise(_cli("fit", str(other), "--resume", str(out)))
    with pytest.raises(TransferkitError, match="another backbone"):
        _raise(_cli("fit", str(images), "--resume", str(out), "--backbone", "resnet10t"))
    # probe stays the default and refuses fine-tuning-only flags
    with pytest.raises(TransferkitError, match="--strategy finetune"):
        _raise(_cli("fit", str(images), "--epochs", "3", "--out", str(tmp_path / "p")))


def test_unknown_yaml_key_names_close_matches(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match="Did you mean epochs"):
        read_yaml_options(bad)  # a Path


def _raise(result: Any) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    raise AssertionError(f"expected an error, got exit {result.exit_code}: {result.output}")
