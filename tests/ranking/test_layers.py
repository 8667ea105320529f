"""Ranking the layers of one backbone: `LayerFeatures` is a backbone whose embedding is every stage's
pooled output then the final embedding, extracted once and split back into one matrix per layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import transferkit
from transferkit.backbones import create_backbone
from transferkit.errors import BackboneError
from transferkit.features import ExtractOptions
from transferkit.ranking.layers import FINAL, LayerFeatures

OPTIONS = ExtractOptions(progress=False, num_workers=0, batch_size=32)


def test_rank_layers_of_one_backbone(shapes: Path, cache_dir: Path) -> None:
    table = transferkit.rank(shapes, backbones=["efficientnet_lite0"], metrics="logme,leep", layers=True,
                             cache=cache_dir, options=OPTIONS)
    names = [r.name for r in table.rows]
    assert names[0] == "efficientnet_lite0:stage1" and names[-1] == "efficientnet_lite0:final"
    assert [r.num_features for r in table.rows] == [16, 24, 40, 112, 320, 1280]
    assert table.pick in names
    # the source head sits on the final embedding only: LEEP there, a stated blank elsewhere
    assert table.row("efficientnet_lite0:final").scores["leep"] is not None
    assert table.row("efficientnet_lite0:stage2").missing["leep"] == "no source classifier head"
    assert all(np.isfinite(r.scores["logme"]) for r in table.rows)  # type: ignore[arg-type]


def test_the_embedding_is_every_stage_pooled_then_the_final_one() -> None:
    inner = create_backbone("test_efficientnet", weights="random", seed=0).eval()
    layers = LayerFeatures(inner)  # type: ignore[arg-type]
    assert layers.layer_names[-1] == FINAL and len(layers.layer_names) >= 3
    assert layers.num_features == sum(layers.layer_dims) and layers.layer_dims[-1] == inner.num_features
    batch = inner.example_batch()  # type: ignore[attr-defined]
    with torch.inference_mode():
        values = layers.forward_features(batch).numpy()
        final = inner.forward_features(batch).numpy()
        maps = inner.model.forward_intermediates(batch, intermediates_only=True)  # type: ignore[attr-defined]
    blocks = layers.split(values)
    assert list(blocks) == layers.layer_names
    assert [b.shape[1] for b in blocks.values()] == layers.layer_dims
    np.testing.assert_allclose(blocks[FINAL], final, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(blocks["stage1"], maps[0].mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-5)


def test_layers_of_a_backbone_without_stages_are_refused() -> None:
    with pytest.raises(BackboneError, match="needs an image backbone"):
        LayerFeatures(create_backbone("tfidf"))  # type: ignore[arg-type]
