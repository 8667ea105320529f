"""The fine-tuned network: a Keras-style head on the unpooled feature map gets Keras's layer shapes; a
head that needs a fixed-size map on a backbone without one is refused where the spec says so; the
network's tensors are listed once each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from transferkit.backbones import create_backbone
from transferkit.backbones.contract import Backbone
from transferkit.errors import ConfigError
from transferkit.finetune.model import FinetuneModel
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


def test_pooled_and_feature_map_heads_give_logits_of_the_class_count() -> None:
    backbone = create_backbone("test_efficientnet", weights="random")
    size = int(backbone.preprocess_config()["input_size"])  # a flatten head is sized for the configured input
    x = torch.zeros(2, 3, size, size)
    pooled = FinetuneModel(backbone, parse_head("dense:N"), num_classes=3)
    assert not pooled.uses_feature_map and pooled.head_in_features == backbone.num_features
    with torch.no_grad():
        channels, h, w = backbone.forward_feature_map(x).shape[1:]
        flat = FinetuneModel(backbone, parse_head("flatten, dense:N"), num_classes=4)
        assert flat.uses_feature_map and flat.head_in_features == channels * h * w
        assert pooled(x).shape == (2, 3) and flat(x).shape == (2, 4)
    names = list(flat.tensors())
    assert len(names) == len(set(names)) and any(n.startswith("head.") for n in names)
    assert any(n.endswith("running_mean") for n in names)  # buffers too
