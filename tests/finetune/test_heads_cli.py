"""Keras-style heads on the unpooled feature map, bad head specs, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from transferkit.backbones import create_backbone
from transferkit.backbones.contract import Backbone
from transferkit.commands import app
from transferkit.errors import ConfigError, TransferkitError
from transferkit.finetune.model import FinetuneModel
from transferkit.finetune.trainer import OutOfMemory, fit_guarded, oom_message
from transferkit.heads import parse_head
from transferkit.options import read_yaml as read_yaml_options

EXAMPLE = Path(__file__).parents[2] / "examples" / "keras_vgg16.yaml"


def test_keras_vgg16_example_builds_the_keras_layer_shapes() -> None:
    options = read_yaml_options(EXAMPLE)
    assert (options["backbone"], options["freeze"], options["optimizer"]) == ("vgg16", "frozen", "adam")
    assert (options["lr"], options["batch_size"], options["epochs"]) == (1e-4, 32, 10)
    backbone = create_backbone("vgg16", weights="random")
    with torch.no_grad():
        fmap = backbone.forward_feature_map(torch.zeros(1, 3, 224, 224))
    assert tuple(fmap.shape[1:]) == (512, 7, 7)
    model = FinetuneModel(backbone, parse_head(options["head"]), num_classes=5)
    dense = [m for m in model.head if isinstance(m, nn.Linear)]
    assert isinstance(model.head[0], nn.Flatten)
    assert [(d.in_features, d.out_features) for d in dense] == [(25088, 1024), (1024, 5)]
    assert any(isinstance(m, nn.ReLU) for m in model.head)


class _TextLike(Backbone):
    name, modality, num_features, weights_id = "texty", "text", 4, "x"

    def preprocess_config(self) -> dict[str, Any]:
        return {"kind": "text"}

    def load(self, item: Any) -> Any:
        return item

    def forward_features(self, batch: Any) -> torch.Tensor:
        return torch.zeros(len(batch), 4)

    def layer_groups(self) -> list[nn.Module]:
        return []


def test_bad_head_specs_show_where_they_fail() -> None:
    with pytest.raises(ConfigError) as err:
        parse_head("flatten, dense:1O24:relu, dense:N")
    assert "dense:1O24:relu" in str(err.value) and "^^^" in str(err.value)
    with pytest.raises(ConfigError) as err:
        FinetuneModel(_TextLike(), parse_head("flatten, dense:N"), 3)
    message = str(err.value)
    assert "flatten" in message and "fixed size" in message and "^^^^^^^" in message


def test_out_of_memory_suggests_a_batch_size() -> None:
    class Boom:
        def fit(self, *a: Any, **k: Any) -> None:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(OutOfMemory, match="--batch-size 16"):
        fit_guarded(Boom(), None, None, None, 32)
    assert "--batch-size 4" in oom_message(8)


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
