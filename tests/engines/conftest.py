"""What the engine tests share: zoo backbones built once per session, a few raw inputs of each modality, the
extraction options, PyTorch's fp32 features as the reference, and one cache root for the exported graphs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from transferkit.backbones import create_backbone
from transferkit.backbones.contract import Backbone
from transferkit.engines.run import is_installed
from transferkit.features import ExtractOptions, extract_features

GRAPH_ENGINES = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    not is_installed("openvino"), reason="openvino not installed (pip install 'transferkit[openvino]')"))]
FAST = ["efficientnet_lite0", "all-minilm-l6-v2", "ge2e-speaker-encoder", "efficientnet_lite0+logmel"]
SLOW = [pytest.param(name, marks=pytest.mark.slow) for name in ("efficientnet_lite1", "efficientnet_lite2")]
_BACKBONES: dict[str, Backbone] = {}


def backbone(name: str) -> Backbone:
    """Zoo backbones, built once per session."""
    if name not in _BACKBONES:
        _BACKBONES[name] = create_backbone(name)
    return _BACKBONES[name]


def inputs_for(b: Backbone, n: int = 5) -> list[Any]:
    """A few raw inputs of varied sizes/lengths, so padding and resizing are exercised."""
    rng = np.random.default_rng(0)
    if b.modality == "image":
        return [Image.fromarray(rng.integers(0, 256, (60 + 20 * (i % 5), 90 - 10 * (i % 5), 3), dtype=np.uint8))
                for i in range(n)]
    if b.modality == "text":
        words = "the quick brown fox jumps over a lazy dog while seven wizards box nightly".split()
        return [" ".join(rng.choice(words, size=3 + 9 * i)) for i in range(n)]
    return [(0.1 * rng.standard_normal(int(16000 * (0.8 + 0.9 * i))).astype(np.float32), 16000) for i in range(n)]


def options(**kw: Any) -> ExtractOptions:
    return ExtractOptions(**{"progress": False, "num_workers": 0, "batch_size": 8, **kw})


@pytest.fixture()
def graph_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache root for the session's exported graphs (features themselves are not cached here), at
    `root/engines` (not the worker's `shared_engines`: these tests read that folder)."""
    root = Path(os.environ.get("TK_TEST_GRAPHS") or tmp_path_factory.getbasetemp() / "graphs")
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(root))
    monkeypatch.setenv("TRANSFERKIT_ENGINES", str(root / "engines"))
    return root


def reference(b: Backbone, items: list[Any]) -> np.ndarray:
    return extract_features(b, items, options=options(engine="torch", precision="fp32", optimize=False)).values
