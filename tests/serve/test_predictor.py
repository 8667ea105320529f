"""The model behind the server (`serve.predictor`): an engine that disagrees with PyTorch on real inputs is
dropped, and test-time views are said to be left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def test_an_engine_that_disagrees_on_real_inputs_is_dropped_for_torch(image_run: Path, images: Path) -> None:
    import transferkit
    from transferkit.serve.predictor import Predictor

    model = transferkit.load(image_run, cache_dir=False, progress=False)
    files = sorted(str(p) for p in images.rglob("*.png"))[:4]
    predictor = Predictor(model, engine="torch")
    predictor.warm_up(4)
    samples = [predictor.prepare(Image.open(f).convert("RGB"), f) for f in files]
    want = predictor.predict(samples)

    class Wrong:  # agreed on the generated warm-up inputs, but not on these
        engine, precision, label = "onnxruntime", "fp32", "onnxruntime fp32"

        def __call__(self, batch: Any) -> Any:
            import torch

            return torch.randn(len(batch), model.backbone_.num_features)

    part = predictor.parts[0]
    part.engine, part.verified = Wrong(), False
    np.testing.assert_allclose(predictor.predict(samples), want, atol=1e-5)
    assert part.engine.label == "torch fp32" and "disagrees" in part.notes[-1]


def test_a_model_with_test_time_views_says_the_server_predicts_on_the_input_alone(images: Path) -> None:
    from transferkit import TransferClassifier
    from transferkit.data import load_dataset
    from transferkit.serve.predictor import Predictor

    model = TransferClassifier("test_efficientnet", weights="random", tta=1, precision="fp32", progress=False,
                               cache_dir=False).fit(load_dataset(images))
    predictor = Predictor(model, engine="torch")
    assert len(predictor.notes) == 1 and "1 test-time views" in predictor.notes[0]
    assert Predictor(TransferClassifier("test_efficientnet", weights="random", precision="fp32", progress=False,
                                        cache_dir=False).fit(load_dataset(images))).notes == []
