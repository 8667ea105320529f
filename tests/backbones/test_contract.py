"""The backbone contract, run over every registered backbone (random init: no weights needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.backbones import create_backbone, list_backbones
from transferkit.errors import BackboneError

ENTRIES = list_backbones()
#: trainable backbones get the full contract on random weights; fixed graphs (ONNX) below
TRAINABLE = [e for e in ENTRIES if e.finetunable]
FIXED = [e for e in ENTRIES if not e.finetunable]


def sample_inputs(modality: str) -> list:
    rng = np.random.default_rng(0)
    if modality == "image":
        return [Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)) for _ in range(2)]
    if modality == "text":
        return ["a short sentence about cats", "another, rather different sentence about markets"]
    t = np.arange(16000) / 16000
    return [(0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (220.0, 440.0)]


def test_registry_is_not_empty() -> None:
    assert {e.modality for e in ENTRIES} >= {"image"}
    assert any(e.name == "efficientnet_lite0" for e in ENTRIES)


@pytest.mark.parametrize("entry", TRAINABLE, ids=[e.name for e in TRAINABLE])
def test_contract(entry) -> None:
    backbone = create_backbone(entry.name, weights="random")
    assert backbone.name == entry.name
    assert backbone.modality == entry.modality
    assert backbone.num_features == entry.num_features
    n_params = sum(p.numel() for p in backbone.parameters())
    if backbone.source_head is not None:
        n_params -= sum(p.numel() for p in backbone.source_head.parameters())
    head_params = 0 if backbone.source_head is None else sum(p.numel() for p in backbone.source_head.parameters())
    assert abs((n_params + head_params) - entry.num_params) / entry.num_params < 0.02 or abs(
        n_params - entry.num_params
    ) / entry.num_params < 0.02
    config = backbone.preprocess_config()
    assert json.loads(json.dumps(config)) == config
    assert backbone.weights_id.startswith("random")

    backbone.eval()
    batch = backbone.preprocess(sample_inputs(entry.modality))
    with torch.inference_mode():
        feats = backbone.forward_features(batch)
        again = backbone.forward_features(batch)
    assert feats.shape == (2, entry.num_features)
    assert torch.isfinite(feats).all()
    assert torch.equal(feats, again)

    groups = backbone.layer_groups()
    assert len(groups) >= 2
    in_groups = {id(p) for g in groups for p in g.parameters()}
    trainable = [p for n, p in backbone.named_parameters() if not n.startswith("source_head")]
    assert all(id(p) in in_groups for p in trainable), "layer_groups must cover every backbone parameter"


@pytest.mark.parametrize("entry", FIXED, ids=[e.name for e in FIXED])
def test_fixed_graph_contract(entry) -> None:
    """A backbone that is a fixed graph: the same contract on its own weights, and clear errors for
    what it cannot do (random weights, layer groups for fine-tuning)."""
    with pytest.raises(BackboneError, match="random"):
        create_backbone(entry.name, weights="random")
    if not entry.available():
        pytest.skip(f"weights of '{entry.name}' not installed (pip package '{entry.source}')")
    backbone = create_backbone(entry.name)
    assert (backbone.name, backbone.modality, backbone.num_features) == (entry.name, entry.modality, entry.num_features)
    config = backbone.preprocess_config()
    assert json.loads(json.dumps(config)) == config
    assert len(backbone.weights_id) == 64
    batch = backbone.preprocess(sample_inputs(entry.modality))
    with torch.inference_mode():
        feats, again = backbone.forward_features(batch), backbone.forward_features(batch)
    assert feats.shape == (2, entry.num_features) and torch.isfinite(feats).all() and torch.equal(feats, again)
    with pytest.raises(BackboneError, match="fine-tune"):
        backbone.layer_groups()


def test_random_init_is_seeded() -> None:
    a = create_backbone("efficientnet_lite0", weights="random", seed=1)
    b = create_backbone("efficientnet_lite0", weights="random", seed=1)
    c = create_backbone("efficientnet_lite0", weights="random", seed=2)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(BackboneError) as info:
        create_backbone("efficientnet_lite")
    message = str(info.value)
    assert "efficientnet_lite0" in message and "Did you mean" in message


@pytest.mark.parametrize("entry", TRAINABLE, ids=[e.name for e in TRAINABLE])
def test_state_dict_holds_each_weight_once(entry) -> None:
    backbone = create_backbone(entry.name, weights="random")
    state = backbone.state_dict()
    pointers = [t.data_ptr() for t in state.values() if t.numel()]
    assert len(pointers) == len(set(pointers)), "a weight is registered under two names"
