"""The other views of a backbone: `NAME:gridG` (the pooled embedding plus the feature map pooled over a
G×G grid) and `A+B` (parts side by side, each extracted on its own). Built through the registry, as
every caller builds them; the parser of these names is `test_spec.py`'s."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from transferkit.backbones import create_backbone
from transferkit.errors import BackboneError


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    g = torch.Generator().manual_seed(0)
    return [Image.fromarray(torch.randint(0, 256, (40, 48, 3), generator=g, dtype=torch.uint8).numpy())
            for _ in range(2)]


def test_a_grid_is_the_pooled_embedding_then_each_cells_mean(images: list[Image.Image]) -> None:
    grid = create_backbone("test_efficientnet:grid2@random").eval()
    inner = grid.inner  # type: ignore[attr-defined]
    batch = grid.collate([grid.load(i) for i in images])
    with torch.inference_mode():
        fmap = inner.forward_feature_map(batch).float()
        features = grid.forward_features(batch)
    c, h, w = fmap.shape[1:]
    assert grid.num_features == c * 5 and features.shape == (2, c * 5)
    torch.testing.assert_close(features[:, :c], fmap.mean(dim=(2, 3)))
    top_left = fmap[:, :, : -(-h // 2), : -(-w // 2)].mean(dim=(2, 3))  # cell (0, 0): first ⌈H/2⌉ rows, ⌈W/2⌉ columns
    torch.testing.assert_close(features[:, c:].view(2, c, 4)[:, :, 0], top_left)
    assert grid.weights_id == inner.weights_id and grid.name == "test_efficientnet:grid2"


def test_a_grid_needs_an_image_backbone_and_one_to_four_cells() -> None:
    with pytest.raises(BackboneError, match="1 to 4 cells"):
        create_backbone("test_efficientnet:grid5@random")
    with pytest.raises(BackboneError, match="needs an image backbone"):
        create_backbone("tfidf:grid2")


def test_a_concatenation_is_its_parts_side_by_side(images: list[Image.Image]) -> None:
    both = create_backbone("test_efficientnet@random+hog").eval()
    parts = both.parts()  # type: ignore[attr-defined]
    assert [p.name for p in parts] == ["test_efficientnet", "hog"]
    assert both.feature_blocks() == [p.num_features for p in parts]  # type: ignore[attr-defined]
    assert both.num_features == sum(p.num_features for p in parts)
    with torch.inference_mode():
        features = both.forward_features(both.collate([both.load(i) for i in images]))
        alone = [p.forward_features(p.collate([p.load(i) for i in images])).float() for p in parts]
    torch.testing.assert_close(features, torch.cat(alone, dim=1))
    # another part's weights: another identity (the feature cache keys on it)
    assert create_backbone("test_efficientnet@random+hog", seed=1).weights_id != both.weights_id
    with pytest.raises(BackboneError, match="concatenation of frozen feature extractors"):
        both.layer_groups()


def test_a_concatenations_saved_preprocessing_must_name_its_parts() -> None:
    both = create_backbone("test_efficientnet@random+hog")
    saved = both.preprocess_config()
    assert [p["name"] for p in saved["parts"]] == ["test_efficientnet", "hog"]
    both.apply_preprocess_config(saved)
    assert both.preprocess_config() == saved
    with pytest.raises(BackboneError, match="saved preprocessing is for parts"):
        both.apply_preprocess_config({"kind": "concat", "parts": saved["parts"][::-1]})


def test_parts_of_two_modalities_are_refused() -> None:
    with pytest.raises(BackboneError, match="one modality"):
        create_backbone("hog+tfidf")
