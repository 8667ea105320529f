"""Augmented views: deterministic for a seed, distinct per view, keyed apart in the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.cache import item_key
from transferkit.data.augment import ImageAugment, augmenting, materialize, views_of
from transferkit.errors import ConfigError


@pytest.fixture()
def photo(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_same_seed_same_view_and_views_differ(photo: str) -> None:
    a, b = views_of([photo], "image", 2, seed=7), views_of([photo], "image", 2, seed=7)
    first = [np.asarray(materialize(v)) for v in a]
    again = [np.asarray(materialize(v)) for v in b]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])
    other_seed = np.asarray(materialize(views_of([photo], "image", 1, seed=8)[0]))
    assert not np.array_equal(first[0], other_seed)
    assert first[0].shape == (48, 64, 3)  # a view keeps the input's size: the backbone's loader resizes


def test_the_same_file_elsewhere_gets_the_same_views(photo: str, tmp_path: Path) -> None:
    """A view is drawn from its source's content, not its path: data copied to another folder (or made again
    by a seeded script) gives the same views, and so the same model; another image gets other views."""
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    moved.write_bytes(Path(photo).read_bytes())
    here, there = (np.asarray(materialize(views_of([p], "image", 1, seed=3)[0])) for p in (photo, str(moved)))
    assert np.array_equal(here, there)
    in_memory = Image.open(photo).convert("RGB")
    assert views_of([in_memory], "image", 1, seed=3)[0].rng().integers(1 << 30) == \
        views_of([in_memory.copy()], "image", 1, seed=3)[0].rng().integers(1 << 30)  # its pixels, not its address
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(other)
    assert views_of([str(other)], "image", 1, seed=3)[0].rng().integers(1 << 30) != \
        views_of([photo], "image", 1, seed=3)[0].rng().integers(1 << 30)


def test_views_are_cached_apart_and_loaders_take_them(photo: str) -> None:
    views = views_of([photo], "image", 2, seed=0)
    keys = {item_key(photo, "image"), *(item_key(v, "image") for v in views)}
    assert len(keys) == 3 and "" not in keys
    loader = augmenting(lambda image: np.asarray(image).shape)
    assert loader(views[0]) == (48, 64, 3)


def test_text_has_no_views_and_bad_policies_are_refused() -> None:
    with pytest.raises(ConfigError, match="images and audio"):
        views_of(["a text"], "text", 1, seed=0)
    with pytest.raises(ConfigError, match="crop scale"):
        ImageAugment(scale=(0.0, 1.0))
