"""The from-scratch baselines: fixed, deterministic featurizers behind the backbone contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transferkit import TransferClassifier
from transferkit.backbones import create_backbone, get_entry
from transferkit.backbones.scratch import SCRATCH_BACKBONES, hog
from transferkit.errors import BackboneError
from transferkit.features import ExtractOptions, extract_features


def test_each_modality_has_one_registered_and_never_fine_tunes() -> None:
    assert SCRATCH_BACKBONES == {"image": "hog", "audio": "mfcc", "text": "tfidf"}
    for modality, name in SCRATCH_BACKBONES.items():
        entry = get_entry(name)
        assert entry is not None and entry.modality == modality and entry.available() and not entry.finetunable
        backbone = create_backbone(name)
        assert backbone.num_features == entry.num_features and len(backbone.weights_id) == 64
        with pytest.raises(BackboneError, match="no layers to fine-tune"):
            backbone.layer_groups()
    with pytest.raises(BackboneError, match="takes no weights"):
        create_backbone("hog", weights="model.safetensors")


def test_hog_sees_orientation_not_brightness() -> None:
    stripes = np.tile((np.arange(64) // 4 % 2).astype(np.float32), (64, 1))  # vertical stripes
    assert np.allclose(hog(stripes), hog(stripes * 0.5 + 0.25), atol=1e-3)  # contrast-normalised blocks
    assert not np.allclose(hog(stripes), hog(stripes.T), atol=1e-2)  # horizontal stripes differ


def test_mfcc_and_tfidf_are_deterministic_and_separate_their_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips, labels = [], []
    t = np.arange(16000) / 16000
    for i in range(24):
        freq = 300 if i % 2 else 2400
        wave = 0.3 * np.sin(2 * np.pi * (freq + rng.normal(0, 20)) * t) + rng.normal(0, 0.02, t.size)
        path = tmp_path / f"{i}.wav"
        sf.write(str(path), wave.astype(np.float32), 16000)
        clips.append(str(path))
        labels.append("low" if i % 2 else "high")
    options = ExtractOptions(progress=False, num_workers=0)
    a = extract_features(create_backbone("mfcc"), clips, options=options)
    b = extract_features(create_backbone("mfcc"), clips, options=options)
    assert np.array_equal(a.values, b.values) and a.values.shape == (24, 80)
    clf = TransferClassifier("mfcc", progress=False, cache_dir=False).fit(clips[:16], labels[:16])
    assert clf.score(clips[16:], labels[16:]) == 1.0

    texts = [f"the {w} {x}" for w in ("match", "goal", "team") for x in ("won", "lost", "drew")]
    texts += [f"the {w} {x}" for w in ("bread", "oven", "soup") for x in ("baked", "burnt", "cooled")]
    topics = ["sport"] * 9 + ["cooking"] * 9
    clf = TransferClassifier("tfidf", progress=False, cache_dir=False).fit(texts, topics)
    assert list(clf.predict(["a goal for the team", "soup in the oven"])) == ["sport", "cooking"]
